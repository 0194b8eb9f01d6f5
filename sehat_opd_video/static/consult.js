/* SeHAT OPD consultation page, for the patient and for the doctor.
 *
 * The Jitsi IFrame API (loaded from the Jitsi server by the page) shows the
 * video; its conference events are posted back to the server, which starts
 * the consultation when both sides are in. The status and the chat are
 * live: long poll of .../consultation (bus) or polling every 3 s.
 * No inline script: the page gives its data as JSON blocks.
 */
(function () {
  'use strict';

  var data = JSON.parse(document.getElementById('consult-data').textContent);
  var T = JSON.parse(document.getElementById('consult-texts').textContent);
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : '';
  var MAX_FILE = 5 * 1024 * 1024;

  var status = data.status;
  var jitsi = null;       // the JitsiMeetExternalAPI of the current call
  var inCall = false;     // our side has joined the conference
  var wasInCall = false;  // we have been in the call since the page opened
  var audioOnly = false;
  var lastId = 0;
  var version = null;
  var cursor = null;
  var seen = {};

  function $(id) { return document.getElementById(id); }

  function show(element, visible) {
    if (element) { element.hidden = !visible; }
  }

  function say(text, kind) {
    var line = $('status');
    if (line) {
      line.textContent = text;
      line.className = kind || 'info';
    }
  }

  function request(method, url, body) {
    var options = {
      method: method,
      credentials: 'same-origin',
      headers: {'Accept': 'application/json', 'X-CSRF-Token': csrf}
    };
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; })
        .then(function (json) {
          if (!response.ok) {
            var error = new Error(
              (json.error && json.error.message) || T.error);
            error.status = response.status;
            throw error;
          }
          return json;
        });
    });
  }

  // Video -----------------------------------------------------------------

  function setButtons(disabled) {
    ['start', 'rejoin-button'].forEach(function (id) {
      var button = $(id);
      if (button) { button.disabled = disabled; }
    });
  }

  function startVideo() {
    setButtons(true);
    say(T.connecting);
    request('POST', data.join).then(function (room) {
      if (typeof window.JitsiMeetExternalAPI !== 'function') {
        throw new Error(T.no_video);
      }
      teardown();
      var stage = $('stage');
      show($('permission'), false);
      show($('rejoin'), false);
      show(stage, true);
      show($('video-controls'), true);
      var options = Object.assign({}, room.options, {
        jwt: room.jwt, parentNode: stage
      });
      jitsi = new window.JitsiMeetExternalAPI(room.domain, options);
      jitsi.addListener('videoConferenceJoined', onJoined);
      jitsi.addListener('videoConferenceLeft', function () {
        onLeft('left');
      });
      jitsi.addListener('readyToClose', function () {
        onLeft('ready_to_close');
      });
    }).catch(function (error) {
      say(error.message, 'alert');
      if (wasInCall) { show($('rejoin'), !status.over); }
    }).then(function () {
      setButtons(false);
    });
  }

  function teardown() {
    if (jitsi) {
      var old = jitsi;
      jitsi = null;
      try { old.dispose(); } catch (e) { /* already gone */ }
    }
    inCall = false;
    setAudioOnly(false, true);
    show($('stage'), false);
    show($('video-controls'), false);
  }

  function postEvent(event) {
    return request('POST', data.event, {event: event}).then(function (json) {
      update(json);
    }).catch(function () { /* the poll brings the truth */ });
  }

  function onJoined() {
    inCall = true;
    wasInCall = true;
    render();
    postEvent('joined');
  }

  function onLeft(kind) {
    if (!jitsi) { return; }
    teardown();
    postEvent(kind);
    if (!status.over) {
      show($('rejoin'), true);
      say(T.left, 'info');
      var button = $('rejoin-button');
      if (button) { button.focus(); }
    }
  }

  function setAudioOnly(on, quiet) {
    audioOnly = on;
    var button = $('audio-only');
    if (button) {
      button.setAttribute('aria-pressed', on ? 'true' : 'false');
      button.textContent = on ? T.audio_only_on : T.audio_only_off;
    }
    if (jitsi && !quiet) {
      jitsi.executeCommand('setAudioOnly', on);
    }
  }

  // Status ----------------------------------------------------------------

  function update(newStatus) {
    if (newStatus && newStatus.state) {
      status = newStatus;
      render();
    }
  }

  function render() {
    var doctorSide = data.role === 'doctor';
    if (status.over) {
      teardown();
      show($('permission'), false);
      show($('rejoin'), false);
      show($('chat-form'), false);
      show($('without-video'), false);
      show($('end'), false);
      show($('over'), true);
      say(T.over, 'notice');
      return;
    }
    show($('without-video'), doctorSide && status.state === 'called'
      && status.answered);
    show($('end'), doctorSide && status.state === 'in_consultation');
    var otherIn = doctorSide ? status.patient_in : status.doctor_in;
    if (inCall) {
      if (status.state === 'in_consultation') {
        say(otherIn ? T.in_consultation
          : (doctorSide ? T.other_left_doctor : T.other_left_patient));
      } else {
        say(doctorSide ? T.waiting_patient : T.waiting_doctor);
      }
    } else if (!jitsi && !wasInCall && status.state === 'in_consultation'
        && !$('start')) {
      say(T.without_video);
    }
  }

  function poll() {
    var url = data.poll + (data.poll.indexOf('?') < 0 ? '?' : '&')
      + 'after=' + lastId
      + (version ? '&version=' + encodeURIComponent(version) : '')
      + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    fetch(url, {credentials: 'same-origin',
        headers: {'Accept': 'application/json'}})
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (json) {
        json.messages.forEach(addMessage);
        version = json.version;
        cursor = json.cursor;
        update(json.token);
        if (!status.over) {
          window.setTimeout(poll, json.live ? 50 : 3000);
        }
      })
      .catch(function () {
        say(T.offline, 'alert');
        window.setTimeout(poll, 5000);
      });
  }

  // Chat ------------------------------------------------------------------

  function pad(number) { return (number < 10 ? '0' : '') + number; }

  function timeOf(iso) {
    // the server gives naive UTC datetimes
    var date = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : iso + 'Z');
    return isNaN(date) ? '' : pad(date.getHours()) + ':' + pad(date.getMinutes());
  }

  function addMessage(message) {
    if (seen[message.id]) { return; }
    seen[message.id] = true;
    lastId = Math.max(lastId, message.id);
    var mine = message.sender === data.role;
    var item = document.createElement('li');
    item.className = mine ? 'mine' : 'theirs';
    item.dataset.id = message.id;
    var who = document.createElement('span');
    who.className = 'who';
    who.textContent = (mine ? T.you
      : (message.sender === 'doctor' ? T.doctor : T.patient))
      + ' · ' + timeOf(message.created);
    item.appendChild(who);
    if (message.text) {
      var text = document.createElement('span');
      text.className = 'text';
      text.textContent = message.text;
      item.appendChild(text);
    }
    if (message.file) {
      if (message.text) { item.appendChild(document.createElement('br')); }
      var link = document.createElement('a');
      link.className = 'attachment';
      link.href = data.files + message.file.id;
      link.setAttribute('download', '');
      link.textContent = message.file.name + ' ('
        + Math.max(1, Math.round(message.file.size / 1024)) + ' KB)';
      item.appendChild(link);
    }
    var log = $('chat-log');
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    show($('chat-empty'), false);
  }

  function chatError(text) {
    var line = $('chat-error');
    line.textContent = text || '';
    show(line, !!text);
  }

  function bindChat() {
    var form = $('chat-form');
    var textarea = $('chat-text');
    var fileInput = $('chat-file');
    var send = $('chat-send');
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var text = textarea.value.trim();
      var file = fileInput.files[0];
      if (!text && !file) { textarea.focus(); return; }
      if (file && file.size >= MAX_FILE) {
        chatError(T.file_too_big);
        return;
      }
      var body = new FormData();
      if (text) { body.append('text', text); }
      if (file) { body.append('file', file, file.name); }
      send.disabled = true;
      send.textContent = T.sending;
      request('POST', data.messages, body).then(function (message) {
        addMessage(message);
        form.reset();
        chatError('');
      }).catch(function (error) {
        chatError(error.message);
      }).then(function () {
        send.disabled = false;
        send.textContent = T.send;
      });
    });
    textarea.addEventListener('keydown', function (event) {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  // Doctor's actions ------------------------------------------------------

  function bindDoctor() {
    var withoutVideo = $('without-video');
    if (withoutVideo) {
      withoutVideo.addEventListener('click', function () {
        withoutVideo.disabled = true;
        request('POST', data.start).then(function (json) {
          update(json);
          say(T.without_video);
        }).catch(function (error) {
          say(error.message, 'alert');
        }).then(function () { withoutVideo.disabled = false; });
      });
    }
    var end = $('end');
    if (end) {
      end.addEventListener('click', function () {
        if (!window.confirm(T.confirm_end)) { return; }
        end.disabled = true;
        request('POST', data.complete).then(function () {
          status = Object.assign({}, status, {state: 'completed', over: true});
          render();
        }).catch(function (error) {
          say(error.message, 'alert');
          end.disabled = false;
        });
      });
    }
  }

  // Start -----------------------------------------------------------------

  function init() {
    var start = $('start');
    if (start) { start.addEventListener('click', startVideo); }
    var rejoin = $('rejoin-button');
    if (rejoin) { rejoin.addEventListener('click', startVideo); }
    var audio = $('audio-only');
    if (audio) {
      audio.addEventListener('click', function () {
        setAudioOnly(!audioOnly);
      });
    }
    bindChat();
    if (data.role === 'doctor') { bindDoctor(); }
    // Leaving the page is leaving the call; a beacon still gets through.
    window.addEventListener('pagehide', function () {
      if (inCall && navigator.sendBeacon) {
        var body = new FormData();
        body.append('event', 'left');
        body.append('csrf_token', csrf);
        navigator.sendBeacon(data.event, body);
      }
    });
    render();
    poll();
  }

  init();
}());
