/* SeHAT OPD: registration and login pages. Everything here only improves
   forms that already work without JavaScript: district and town lists that
   follow the state, the age next to the date of birth, the resend countdown,
   and fields shown only for the beneficiary category they concern. */
(function () {
  'use strict';
  var doc = document;
  doc.documentElement.classList.add('js');

  function $(selector, root) { return (root || doc).querySelector(selector); }
  function $$(selector, root) {
    return Array.prototype.slice.call((root || doc).querySelectorAll(selector));
  }

  // Resend OTP: disabled until the server would accept another request.
  $$('button[data-wait]').forEach(function (button) {
    var left = parseInt(button.getAttribute('data-wait'), 10) || 0;
    var label = button.getAttribute('data-label');
    var waiting = button.getAttribute('data-wait-label');
    function tick() {
      if (left <= 0) {
        button.disabled = false;
        button.textContent = label;
        return;
      }
      button.disabled = true;
      button.textContent = waiting.replace('{s}', left);
      left -= 1;
      window.setTimeout(tick, 1000);
    }
    tick();
  });

  // Age next to the date of birth.
  var birth = $('#f-birth_date');
  var age = $('#f-birth_date-age');
  if (birth && age) {
    birth.max = new Date().toISOString().slice(0, 10);
    var showAge = function () {
      var parts = /^(\d{4})-(\d{2})-(\d{2})$/.exec(birth.value);
      if (!parts) { age.textContent = ''; return; }
      var now = new Date();
      var years = now.getFullYear() - parts[1];
      var month = now.getMonth() + 1;
      if (month < +parts[2] || (month === +parts[2] && now.getDate() < +parts[3])) {
        years -= 1;
      }
      age.textContent = (years >= 0 && years < 130)
        ? age.getAttribute('data-template').replace('{n}', years) : '';
    };
    birth.addEventListener('input', showAge);
    birth.addEventListener('change', showAge);
  }

  // A field the server refused loses its error as soon as it is changed.
  $$('[aria-invalid=true]').forEach(function (control) {
    function clear() {
      control.removeAttribute('aria-invalid');
      var error = doc.getElementById(control.id + '-error');
      if (error) { error.hidden = true; }
    }
    control.addEventListener('input', clear, {once: true});
    control.addEventListener('change', clear, {once: true});
  });

  var form = $('#registration');
  if (!form) { return; }

  // Relation for dependants, ECHS card for ex-servicemen.
  var category = $('#f-beneficiary_category');
  var rankMarks = $$('#row-rank .req, #row-rank .sr');
  function showCategoryFields() {
    // the rank is not asked of a dependant
    rankMarks.forEach(function (mark) {
      mark.hidden = category.value === 'dependant';
    });
    $$('[data-show-for]', form).forEach(function (block) {
      var shown = block.getAttribute('data-show-for') === category.value;
      block.hidden = !shown;
      $$('input, select', block).forEach(function (input) {
        input.disabled = !shown;
      });
    });
  }
  if (category) {
    category.addEventListener('change', showCategoryFields);
    showCategoryFields();
  }

  // State -> district -> town lists, from GET /regions?state=.
  var state = $('#f-state');
  var district = $('#f-district');
  var city = $('#f-city');
  var other = $('#f-city_other');
  var otherRow = $('#row-city_other');
  var otherValue = city.getAttribute('data-other');
  var regions = {};

  function fill(select, items, emptyText) {
    var keep = select.value;
    while (select.options.length) { select.remove(0); }
    select.add(new Option(items.length ? select.getAttribute('data-choose')
      : emptyText, ''));
    items.forEach(function (item) {
      select.add(new Option(item[1], item[0], false, item[0] === keep));
    });
  }

  function load(code) {
    if (regions[code]) { return Promise.resolve(regions[code]); }
    var url = form.getAttribute('data-api') + '/regions?state='
      + encodeURIComponent(code) + '&lang=' + form.getAttribute('data-lang');
    return fetch(url, {credentials: 'same-origin'}).then(function (response) {
      if (!response.ok) { throw new Error(response.status); }
      return response.json();
    }).then(function (data) {
      regions[code] = data.states[0];
      return regions[code];
    });
  }

  function fallBack() {
    // without the lists the no-JavaScript button still works
    $$('.js-hide', form).forEach(function (node) {
      node.classList.remove('js-hide');
    });
  }

  function showOther() {
    var needed = city.value === otherValue;
    otherRow.hidden = !needed;
    other.disabled = !needed;
  }

  function fillCities(stateData) {
    var found = (stateData ? stateData.districts : []).filter(function (d) {
      return d.code === district.value;
    })[0];
    fill(city, (found ? found.cities : []).map(function (name) {
      return [name, name];
    }), city.getAttribute('data-empty'));
    city.add(new Option(city.getAttribute('data-other-label'), otherValue,
      false, false));
    showOther();
  }

  state.addEventListener('change', function () {
    district.value = '';
    if (!state.value) {
      fill(district, [], district.getAttribute('data-empty'));
      fillCities(null);
      return;
    }
    load(state.value).then(function (data) {
      fill(district, data.districts.map(function (d) {
        return [d.code, d.name];
      }), district.getAttribute('data-empty'));
      fillCities(data);
    }).catch(fallBack);
  });
  district.addEventListener('change', function () {
    if (!state.value) { return; }
    load(state.value).then(fillCities).catch(fallBack);
  });
  city.addEventListener('change', showOther);
  if (!other.value) { showOther(); }
})();
