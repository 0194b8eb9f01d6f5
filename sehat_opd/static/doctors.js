/* Doctors' status: redraw the board every 30 seconds while the page is
   visible, from the page itself (the server renders and translates it). */
(function () {
  'use strict';
  var PERIOD = 30000;
  var board = document.getElementById('board');
  var summary = document.getElementById('board-summary');
  var updated = document.getElementById('board-updated');
  if (!board || !window.fetch || !window.DOMParser) { return; }

  function refresh() {
    if (document.visibilityState !== 'visible') { return; }
    window.fetch(window.location.href, {credentials: 'same-origin'})
      .then(function (response) {
        if (!response.ok) { throw new Error(response.status); }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, 'text/html');
        var newBoard = page.getElementById('board');
        var newSummary = page.getElementById('board-summary');
        if (newBoard) { board.innerHTML = newBoard.innerHTML; }
        if (newSummary) { summary.innerHTML = newSummary.innerHTML; }
        var time = new Date().toLocaleTimeString(document.documentElement.lang || undefined,
          {hour: '2-digit', minute: '2-digit', second: '2-digit'});
        updated.textContent = updated.getAttribute('data-label').replace('{time}', time);
      })
      .catch(function () { /* keep what is shown; try again later */ });
  }
  window.setInterval(refresh, PERIOD);
  document.addEventListener('visibilitychange', refresh);
})();
