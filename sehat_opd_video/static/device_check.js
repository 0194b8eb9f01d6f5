/* SeHAT OPD device check: browser support, camera preview, microphone level
 * and a speaker test sound. Nothing is sent anywhere. */
(function () {
  'use strict';

  var T = JSON.parse(document.getElementById('device-texts').textContent);
  var stream = null;
  var audioContext = null;
  var heard = false;

  function $(id) { return document.getElementById(id); }

  function mark(name, ok) {
    var item = document.querySelector('[data-check="' + name + '"]');
    if (!item) { return; }
    item.classList.add(ok ? 'ok' : 'bad');
    item.querySelector('.mark').textContent = ok ? '\u2713' : '\u2717';
    item.querySelector('.result').textContent = ok ? T.ok : T.missing;
  }

  function say(id, text, kind) {
    var line = $(id);
    line.textContent = text;
    line.className = kind || '';
  }

  function checkBrowser() {
    var media = !!(navigator.mediaDevices
      && navigator.mediaDevices.getUserMedia);
    var webrtc = typeof window.RTCPeerConnection === 'function';
    var secure = window.isSecureContext === true;
    var AudioContextClass = window.AudioContext || window.webkitAudioContext;
    var audio = typeof AudioContextClass === 'function';
    mark('media', media);
    mark('webrtc', webrtc);
    mark('secure', secure);
    mark('audio', audio);
    if (!secure) {
      say('browser-verdict', T.insecure, 'alert');
    } else if (media && webrtc && audio) {
      say('browser-verdict', T.all_ok, 'notice');
    } else {
      say('browser-verdict', T.not_ok, 'alert');
    }
    return media;
  }

  function explain(error) {
    var name = error && error.name;
    if (name === 'NotAllowedError' || name === 'SecurityError') {
      return T.denied;
    }
    if (name === 'NotFoundError' || name === 'OverconstrainedError') {
      return T.not_found;
    }
    if (name === 'NotReadableError' || name === 'AbortError') {
      return T.busy;
    }
    return T.failed;
  }

  function meter(source) {
    var AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!AudioContextClass) { return; }
    audioContext = audioContext || new AudioContextClass();
    var analyser = audioContext.createAnalyser();
    analyser.fftSize = 512;
    audioContext.createMediaStreamSource(source).connect(analyser);
    var samples = new Uint8Array(analyser.fftSize);
    var level = $('mic-level');
    function tick() {
      if (!stream) { return; }
      analyser.getByteTimeDomainData(samples);
      var peak = 0;
      for (var i = 0; i < samples.length; i++) {
        peak = Math.max(peak, Math.abs(samples[i] - 128));
      }
      var value = Math.min(100, Math.round(peak / 128 * 200));
      level.value = value;
      level.textContent = String(value);
      if (value > 12 && !heard) {
        heard = true;
        say('media-result', T.camera_ok + ' ' + T.heard, 'notice');
      }
      window.requestAnimationFrame(tick);
    }
    tick();
  }

  function testMedia() {
    var button = $('test-media');
    button.disabled = true;
    say('media-result', T.asking, 'info');
    navigator.mediaDevices.getUserMedia({
      audio: true,
      video: {height: {ideal: 360}, facingMode: 'user'}
    }).then(function (media) {
      stream = media;
      var preview = $('preview');
      preview.srcObject = media;
      preview.hidden = false;
      say('media-result', T.camera_ok, 'notice');
      meter(media);
    }).catch(function (error) {
      say('media-result', explain(error), 'alert');
      button.disabled = false;
    });
  }

  function testSpeaker() {
    var sound = $('speaker-sound');
    sound.currentTime = 0;
    var played = sound.play();
    say('speaker-result', T.playing, 'info');
    if (played && played.catch) {
      played.catch(function () {
        say('speaker-result', T.play_failed, 'alert');
      });
    }
  }

  if (checkBrowser()) {
    $('test-media').addEventListener('click', testMedia);
  } else {
    $('test-media').disabled = true;
  }
  $('test-speaker').addEventListener('click', testSpeaker);
  window.addEventListener('pagehide', function () {
    if (stream) {
      stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
    }
  });
}());
