/* A stand-in for Jitsi Meet's IFrame API (external_api.js), served by the
 * tests' fake Jitsi server. It records what the page gives it and lets the
 * test fire the conference events the page listens to:
 *   window.__jitsiDomain, window.__jitsiOptions (last options, without the
 *   parent node), window.__jitsiCalls (every options), window.__jitsiCommands
 *   window.__jitsi.fire('videoConferenceJoined', {...})
 */
(function () {
  'use strict';
  window.__jitsiCalls = window.__jitsiCalls || [];
  window.__jitsiCommands = window.__jitsiCommands || [];

  function FakeJitsiMeetExternalAPI(domain, options) {
    var copy = {};
    Object.keys(options).forEach(function (key) {
      if (key !== 'parentNode') { copy[key] = options[key]; }
    });
    copy = JSON.parse(JSON.stringify(copy));
    window.__jitsiDomain = domain;
    window.__jitsiOptions = copy;
    window.__jitsiCalls.push({domain: domain, options: copy});
    window.__jitsi = this;
    this.listeners = {};
    this.disposed = false;
    var frame = document.createElement('iframe');
    frame.allow = 'camera; microphone; display-capture; autoplay';
    frame.src = (options.noSSL ? 'http' : 'https') + '://' + domain + '/'
      + encodeURIComponent(options.roomName) + '#jwt=' + options.jwt;
    frame.style.width = options.width || '100%';
    frame.style.height = options.height || '100%';
    frame.style.border = '0';
    frame.id = 'jitsiConferenceFrame0';
    (options.parentNode || document.body).appendChild(frame);
    this.frame = frame;
  }

  var proto = FakeJitsiMeetExternalAPI.prototype;
  proto.addListener = proto.addEventListener = proto.on = function (name, fn) {
    (this.listeners[name] = this.listeners[name] || []).push(fn);
    return this;
  };
  proto.fire = function (name, data) {
    (this.listeners[name] || []).forEach(function (fn) { fn(data || {}); });
  };
  proto.executeCommand = function () {
    var args = Array.prototype.slice.call(arguments);
    window.__jitsiCommands.push(args);
    if (args[0] === 'hangup') {
      this.fire('readyToClose', {});
    }
  };
  proto.getIFrame = function () { return this.frame; };
  proto.dispose = function () {
    this.disposed = true;
    if (this.frame && this.frame.parentNode) {
      this.frame.parentNode.removeChild(this.frame);
    }
  };
  window.JitsiMeetExternalAPI = FakeJitsiMeetExternalAPI;
}());
