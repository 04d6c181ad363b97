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
