/* SeHAT OPD doctor console: presence, queue, current patient.
 *
 * State comes from the console API (/api/v1/doctor/...): the page starts
 * from the state it was rendered with, then long-polls /doctor/wait (or
 * polls every 3 s without a bus). While online it sends a heartbeat every
 * ~20 s; the server sets a silent doctor offline after 2 minutes.
 * Texts come from the page's data-* attributes (translated there).
 */
(function () {
  'use strict';
  var root = document.getElementById('console');
  if (!root || !window.fetch) { return; }
  var T = root.dataset;
  var api = T.api + '/doctor';
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || '';
  var state = JSON.parse(document.getElementById('initial-state').textContent);
  var version = '';
  var cursor = '';
  var heartbeat = null;
  var countdown = null;
  var settled = '';
  var focus = T.focus;
  var $ = function (id) { return document.getElementById(id); };

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (all, key) {
      return values[key] === undefined ? all : values[key];
    });
  }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function label(kind, code) {
    return code ? (root.getAttribute('data-' + kind + '-' + code) || code) : '';
  }

  function say(text) { $('message').textContent = text || ''; }

  function request(method, path, body) {
    var options = {method: method, credentials: 'same-origin', headers: {Accept: 'application/json'}};
    if (method !== 'GET') {
      options.headers['X-CSRF-Token'] = csrf;
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body || {});
    }
    return fetch(api + path, options).then(function (r) {
      if (r.status === 401) { window.location.reload(); return Promise.reject(null); }
      return r.json().then(function (data) {
        if (!r.ok) { return Promise.reject(data); }
        return data;
      });
    });
  }

  function failed(error) {
    if (error === null) { return; }
    say(error && error.error ? error.error.message : T.network);
  }

  function fileLinks(files) {
    var span = el('span', null, 'files');
    (files || []).forEach(function (file) {
      var link = el('a', file.name);
      link.href = api + '/files/' + file.id;
      span.appendChild(link);
    });
    return span;
  }

  function renderQueue() {
    var body = $('queue');
    body.textContent = '';
    var queue = state.queue || [];
    queue.forEach(function (token) {
      var row = el('tr');
      row.dataset.token = token.id;
      if (String(token.id) === focus) { row.className = 'focus'; }
      row.appendChild(el('td', token.number, 'num'));
      var who = el('td');
      who.appendChild(el('strong', token.patient.name));
      if (token.missed_calls) {
        who.appendChild(el('br'));
        who.appendChild(el('span', fill(T.missed, {count: token.missed_calls}), 'tag busy'));
      }
      row.appendChild(who);
      row.appendChild(el('td', [token.patient.age, label('g', token.patient.gender)].filter(Boolean).join(' · ')));
      row.appendChild(el('td', token.complaint || '–'));
      var files = el('td');
      files.appendChild(token.files && token.files.length ? fileLinks(token.files) : el('span', '–'));
      row.appendChild(files);
      row.appendChild(el('td', token.waited_minutes === null ? '–' : fill(T.minutes, {minutes: token.waited_minutes})));
      body.appendChild(row);
    });
    var empty = $('queue-empty');
    empty.hidden = queue.length > 0;
    empty.textContent = state.opd ? T.empty : T.offlineQueue;
    var opd = (state.opds || []).filter(function (o) { return o.id === state.opd; })[0];
    $('queue-count').textContent = state.opd ? '(' + queue.length + ')' : '';
    $('call-next').disabled = !(state.online && !state.busy && queue.length);
    if (opd && !state.online) { $('queue-count').textContent = '(' + opd.waiting + ')'; }
  }

  function renderPatient(target, detail) {
    target.textContent = '';
    if (!detail) { return; }
    var node = document.importNode($('patient-template').content, true);
    var profile = detail.profile || {};
    var values = {
      number: detail.number,
      name: detail.patient.name,
      patient_id: profile.patient_id,
      age: detail.patient.age,
      gender: label('g', detail.patient.gender),
      category: label('c', profile.beneficiary_category),
      service: [label('s', profile.service), profile.service_number].filter(Boolean).join(' · '),
      rank: [profile.rank, profile.relation].filter(Boolean).join(' · '),
      place: [profile.city, profile.district, profile.state].filter(Boolean).join(', '),
      complaint: detail.complaint || '–',
      state: $('state-names').dataset[detail.state] || detail.state
    };
    Object.keys(values).forEach(function (key) {
      var cell = node.querySelector('[data-f="' + key + '"]');
      if (cell) { cell.textContent = values[key] || '–'; }
    });
    var files = node.querySelector('[data-f="files"]');
    (detail.files || []).forEach(function (file) {
      var item = el('li');
      var link = el('a', file.name);
      link.href = api + '/files/' + file.id;
      item.appendChild(link);
      files.appendChild(item);
    });
    node.querySelector('[data-f="no-files"]').hidden = (detail.files || []).length > 0;
    var history = node.querySelector('[data-f="history"]');
    (detail.history || []).forEach(function (past) {
      history.appendChild(el('li', past.date + ' · ' + past.opd.name +
        (past.doctor ? ' · ' + past.doctor : '') + (past.complaint ? ' · ' + past.complaint : '')));
    });
    node.querySelector('[data-f="no-history"]').hidden = (detail.history || []).length > 0;
    target.appendChild(node);
  }

  function renderCurrent() {
    var current = state.current;
    var line = $('current-state');
    if (countdown) { clearInterval(countdown); countdown = null; }
    renderPatient($('current'), current);
    $('current-actions').hidden = !current;
    if (!current) {
      line.textContent = T.none;
      line.className = 'current-state';
      return;
    }
    var link = $('open-consultation');
    link.hidden = !current.consultation_url;
    if (current.consultation_url) { link.href = current.consultation_url; }
    $('complete').hidden = current.state !== 'in_consultation';
    if (current.state === 'called' && !current.answered && current.call_seconds_left !== null) {
      line.className = 'current-state called';
      var deadline = Date.now() + current.call_seconds_left * 1000;
      var tick = function () {
        var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        var s = left % 60;
        line.textContent = T.called + ' · ' + fill(T.timeLeft,
          {time: Math.floor(left / 60) + ':' + (s < 10 ? '0' : '') + s});
        if (left <= 0) {
          if (countdown) { clearInterval(countdown); countdown = null; }
          // the window has passed: the heartbeat puts the patient back in
          // line; once per call
          var call = current.id + '@' + current.call_deadline;
          if (settled !== call) { settled = call; setTimeout(beat, 300); }
        }
      };
      if (current.call_seconds_left > 0) { countdown = setInterval(tick, 1000); }
      tick();
    } else if (current.state === 'called') {
      line.className = 'current-state consult';
      line.textContent = T.answered;
    } else {
      line.className = 'current-state consult';
      line.textContent = T.consult;
    }
  }

  function renderPresence() {
    var pill = $('presence-pill');
    pill.className = 'pill' + (state.online ? (state.busy ? ' busy' : ' online') : '');
    $('presence-text').textContent = state.online ? (state.busy ? T.busy : T.online) : T.offline;
    $('toggle-online').textContent = state.online ? T.goOffline : T.goOnline;
    $('toggle-online').classList.toggle('secondary', state.online);
    var select = $('opd-select');
    (state.opds || []).forEach(function (opd) {
      var option = select.querySelector('option[value="' + opd.id + '"]');
      if (option) { option.textContent = opd.name + ' (' + opd.waiting + ')'; }
    });
    if (state.opd && document.activeElement !== select) { select.value = String(state.opd); }
    if (state.online && !heartbeat) {
      heartbeat = setInterval(beat, (Number(T.heartbeat) || 20) * 1000);
    } else if (!state.online && heartbeat) {
      clearInterval(heartbeat);
      heartbeat = null;
    }
  }

  function render(next) {
    if (next) { state = next; }
    if (state.csrf_token) { csrf = state.csrf_token; }
    renderPresence();
    renderQueue();
    renderCurrent();
  }

  function loadFocus() {
    if (!focus) { return; }
    request('GET', '/tokens/' + focus).then(function (detail) {
      $('focus-card').hidden = false;
      renderPatient($('focus'), detail);
    }, function (error) {
      if (error && error.error && error.error.code === 'not_found') { say(T.notYours); }
      else { failed(error); }
    });
  }

  function act(method, path, body) {
    say('');
    return request(method, path, body).then(function (result) {
      if (result && result.queue !== undefined) { render(result); }
      return result;
    }, failed);
  }

  function beat() {
    if (!state.online) { return; }
    request('POST', '/heartbeat').then(render, failed);
  }

  var waiting = false;
  function loop() {
    if (waiting) { return; }
    waiting = true;
    fetch(api + '/wait?version=' + encodeURIComponent(version) +
        (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''),
      {credentials: 'same-origin', headers: {Accept: 'application/json'}})
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.json().then(function (body) { return r.ok ? body : Promise.reject(body); });
      })
      .then(function (next) {
        waiting = false;
        if (!next) { return; }
        version = next.version;
        if (next.cursor) { cursor = next.cursor; }
        render(next);
        setTimeout(loop, next.live ? 0 : 3000);
      })
      .catch(function () {
        waiting = false;
        say(T.network);
        setTimeout(function () { say(''); loop(); }, 3000);
      });
  }

  $('toggle-online').addEventListener('click', function () {
    if (state.online) { act('POST', '/offline'); }
    else { act('POST', '/online', {opd: Number($('opd-select').value)}); }
  });
  $('opd-select').addEventListener('change', function () {
    if (state.online) { act('POST', '/online', {opd: Number($('opd-select').value)}); }
  });
  $('call-next').addEventListener('click', function () {
    $('call-next').disabled = true;
    act('POST', '/call-next').then(function () { return request('GET', '/state'); }).then(render, failed);
  });
  $('complete').addEventListener('click', function () {
    if (!state.current || !window.confirm(T.confirmComplete)) { return; }
    act('POST', '/tokens/' + state.current.id + '/complete').then(function () {
      return request('GET', '/state');
    }).then(render, failed);
  });

  render();
  loadFocus();
  loop();
}());
