/* SeHAT OPD waiting room: live place in line and Call Now.
 *
 * Long-polls GET /tokens/current/wait (the server answers when the queue
 * or the token changes, or after its timeout); on SQLite, which has no
 * bus, the answer says live:false and the page polls every 3 s instead.
 * Errors never stop it: it shows "reconnecting" and backs off (below).
 * Every text comes from the page (data-* attributes, hidden elements), so
 * it is translated with the page.
 */
(function () {
  'use strict';
  var room = document.getElementById('room');
  if (!room || !window.fetch) { return; }
  var api = room.dataset.api;
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || '';
  var version = room.dataset.version;
  var cursor = '';
  var state = null;
  var missed = room.dataset.missed === '1';
  var ringing = false;
  var deadline = null;     // local clock time (ms) at which the call ends
  var timer = null;
  var sound = null;
  var $ = function (id) { return document.getElementById(id); };

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (all, key) {
      return values[key] === undefined ? all : values[key];
    });
  }

  function clock(seconds) {
    seconds = Math.max(0, seconds);
    var s = seconds % 60;
    return Math.floor(seconds / 60) + ':' + (s < 10 ? '0' : '') + s;
  }

  function showState(name) {
    var lines = room.querySelectorAll('.state-line');
    for (var i = 0; i < lines.length; i++) {
      lines[i].hidden = lines[i].dataset.state !== name;
    }
  }

  function renderDoctors(doctors) {
    var list = $('doctors');
    list.textContent = '';
    doctors.forEach(function (doctor) {
      var item = document.createElement('li');
      item.className = 'doctor';
      var avatar = document.createElement('span');
      avatar.className = 'avatar';
      avatar.setAttribute('aria-hidden', 'true');
      avatar.textContent = (doctor.name || '?').charAt(0);
      var body = document.createElement('span');
      body.className = 'doctor-body';
      var name = document.createElement('strong');
      name.textContent = doctor.name;
      var about = document.createElement('span');
      about.className = 'small muted';
      about.textContent = [doctor.specialty, doctor.qualification].filter(Boolean).join(' · ');
      body.appendChild(name);
      body.appendChild(about);
      var tag = document.createElement('span');
      tag.className = 'tag ' + (doctor.busy ? 'busy' : 'open');
      tag.textContent = doctor.busy ? room.dataset.busy : room.dataset.free;
      item.appendChild(avatar);
      item.appendChild(body);
      item.appendChild(tag);
      list.appendChild(item);
    });
    $('no-doctors').hidden = doctors.length > 0;
  }

  function tick() {
    var left = Math.ceil((deadline - Date.now()) / 1000);
    $('countdown').textContent = clock(left);
    if (left <= 0 && timer) {
      clearInterval(timer);
      timer = null;
      $('call-now').disabled = true;
      missed = true;
      showState('missed');
      // the server puts the token back in line when asked after the window
      setTimeout(poll, 500);
    }
  }

  function ring(status) {
    document.title = '(!) ' + document.title.replace(/^\(!\) /, '');
    if (sound) {
      sound.currentTime = 0;
      var played = sound.play();
      if (played && played.catch) { played.catch(function () {}); }
    }
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        new Notification(room.dataset.notifyTitle, {
          body: room.dataset.notifyBody, tag: 'sehat-call', requireInteraction: true });
      } catch (e) { /* some mobile browsers only notify from a service worker */ }
    }
  }

  function apply(status) {
    version = String(status.version);
    if (status.cursor) { cursor = status.cursor; }
    var called = status.state === 'called' && !status.answered;
    var consulting = status.state === 'in_consultation' || (status.state === 'called' && status.answered);
    $('position').textContent = status.position ?
      fill(room.dataset.of, {position: status.position, total: status.waiting}) : '–';
    $('eta').textContent = status.eta_seconds !== null && status.eta_seconds !== undefined ?
      fill(room.dataset.eta, {minutes: Math.ceil(status.eta_seconds / 60)}) :
      (status.state === 'waiting' ? room.dataset.etaNone : '–');
    $('online').textContent = status.doctors_online;
    renderDoctors(status.doctors || []);

    var box = $('callnow');
    box.classList.toggle('active', called);
    box.querySelector('.callnow-wait').hidden = called;
    box.querySelector('.callnow-time').hidden = !called;
    $('call-now').disabled = !called;
    $('callnow-title').textContent = called ?
      fill(room.dataset.calling, {doctor: status.doctor ? status.doctor.name : room.dataset.aDoctor}) :
      $('call-now').textContent;
    if (called) {
      deadline = Date.now() + status.call_seconds_left * 1000;
      if (!timer && status.call_seconds_left > 0) { timer = setInterval(tick, 1000); }
      tick();
      if (!ringing) { ringing = true; ring(status); }
    } else {
      if (timer) { clearInterval(timer); timer = null; }
      ringing = false;
      document.title = document.title.replace(/^\(!\) /, '');
    }
    $('consulting').hidden = !consulting;
    var link = $('consult-link');
    link.hidden = !status.consultation_url;
    if (status.consultation_url) { link.href = status.consultation_url; }
    if (called || consulting) { missed = false; }
    else if (state === 'called' && status.state === 'waiting') { missed = true; }
    if (status.state === 'expired') { showState('expired'); }
    else if (called) { showState('called'); }
    else if (consulting) { showState('consulting'); }
    else { showState(missed ? 'missed' : 'waiting'); }
    state = status.state;
    room.dataset.state = status.state;
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function poll() {
    // one immediate status read (after the countdown ends)
    return fetch(api + '/tokens/current', {credentials: 'same-origin'})
      .then(function (r) { return r.status === 404 ? null : r.json(); })
      .then(function (status) {
        if (status === null) { window.location.reload(); }
        else if (!status.error) { apply(status); }
      }).catch(function () {});
  }

  // After an error (the service restarting answers 503 with Retry-After,
  // or the network is gone) the page says it is reconnecting and tries
  // again later each time, up to 30 s, never giving up; the first answer
  // puts everything back.
  var failures = 0;
  function retryDelay(response) {
    failures += 1;
    var wait = Math.min(30000, 1000 * Math.pow(2, failures - 1));
    var after = response ? Number(response.headers.get('Retry-After')) : 0;
    if (after > 0) { wait = Math.max(wait, Math.min(after, 60) * 1000); }
    // spread out: the pages of a whole waiting room do not come back at once
    return wait * (0.75 + Math.random() * 0.5);
  }

  var polling = false;
  function loop() {
    if (polling) { return; }
    polling = true;
    var response = null;
    // after an error, read the status at once rather than wait in a long
    // poll: the page shows it is back as soon as the service is
    var url = failures ? api + '/tokens/current' :
      api + '/tokens/current/wait?version=' + encodeURIComponent(version) +
      (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    fetch(url, {credentials: 'same-origin', headers: {Accept: 'application/json'}})
      .then(function (r) {
        response = r;
        if (r.status === 404) { window.location.reload(); return null; }
        if (r.status === 401) { window.location.reload(); return null; }
        return r.json().then(function (body) { return r.ok ? body : Promise.reject(body); });
      })
      .then(function (status) {
        polling = false;
        if (!status) { return; }
        failures = 0;
        $('reconnecting').hidden = true;
        room.dataset.connection = 'ok';
        var live = status.live;
        apply(status);
        return sleep(live ? 0 : 3000).then(loop);
      })
      .catch(function () {
        polling = false;
        $('reconnecting').hidden = false;
        room.dataset.connection = 'reconnecting';
        return sleep(retryDelay(response)).then(loop);
      });
  }

  function answer(event) {
    event.preventDefault();
    $('call-now').disabled = true;
    fetch(api + '/tokens/current/call', {
      method: 'POST', credentials: 'same-origin',
      headers: {'X-CSRF-Token': csrf, 'Content-Type': 'application/json'}, body: '{}'
    }).then(function (r) { return r.json(); }).then(function (body) {
      if (body.next_url) { window.location.href = body.next_url; }
      else { window.location.reload(); }
    }).catch(function () { window.location.reload(); });
  }

  function enableAlerts() {
    if (sound) {
      // playing once from a click lets the page ring later
      sound.muted = true;
      var played = sound.play();
      var unmute = function () { sound.pause(); sound.muted = false; sound.currentTime = 0; };
      if (played && played.then) { played.then(unmute, unmute); } else { unmute(); }
    }
    var done = function () {
      $('enable-alerts').hidden = true;
      $('alerts-on').hidden = false;
    };
    if ('Notification' in window && Notification.permission === 'default') {
      Notification.requestPermission().then(done, done);
    } else { done(); }
  }

  if (window.Audio) {
    sound = new Audio(room.dataset.sound);
    sound.preload = 'auto';
  }
  $('call-form').addEventListener('submit', answer);
  var cancel = $('cancel-token');
  if (cancel) {
    cancel.form.addEventListener('submit', function () { cancel.disabled = true; });
  }
  $('alerts').hidden = false;
  $('enable-alerts').addEventListener('click', enableAlerts);
  if ('Notification' in window && Notification.permission === 'granted') {
    $('enable-alerts').hidden = true;
    $('alerts-on').hidden = false;
  }
  var seconds = $('countdown').dataset.seconds;
  if (seconds !== '') {
    deadline = Date.now() + Number(seconds) * 1000;
    ringing = true;
    timer = setInterval(tick, 1000);
    ring();
  }
  state = room.dataset.state;
  loop();
}());
