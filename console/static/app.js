// Keeps the overview live: the server pushes the rendered panels as server-sent events.
(function () {
  "use strict";
  var box = document.getElementById("overview");
  if (!box || !window.EventSource) {
    return;
  }
  var state = document.getElementById("live-state");
  var source = new EventSource(box.getAttribute("data-live"));
  source.onopen = function () {
    state.textContent = "live";
    state.className = "live";
  };
  source.onmessage = function (e) {
    box.innerHTML = e.data;
    state.textContent = "live · updated " + new Date().toLocaleTimeString();
    state.className = "live";
  };
  source.addEventListener("problem", function (e) {
    state.textContent = e.data;
    state.className = "bad";
  });
  source.onerror = function () {
    state.textContent = "reconnecting…";
    state.className = "muted";
  };
})();

// The explorer's live tail: each stored event arrives as a rendered table row.
(function () {
  "use strict";
  var rows = document.getElementById("tail-rows");
  if (!rows || !window.EventSource) {
    return;
  }
  var state = document.getElementById("tail-state");
  var source = new EventSource(rows.getAttribute("data-tail"));
  var count = 0;
  source.addEventListener("ready", function () {
    state.textContent = "Tailing: events stored from now on appear below.";
  });
  source.onmessage = function (e) {
    rows.insertAdjacentHTML("beforeend", e.data);
    count++;
    state.textContent = count + " event(s) so far";
    if (rows.rows.length > 201) {
      rows.deleteRow(1);
    }
  };
  source.onerror = function () {
    state.textContent = "reconnecting…";
  };
})();

// Pages that show progress without a stream (replays) reload every few seconds, unless
// the user is filling in a form.
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-refresh"), 10);
  if (!every) {
    return;
  }
  setInterval(function () {
    var active = document.activeElement;
    if (!active || active === document.body) {
      location.reload();
    }
  }, every * 1000);
})();
