// The panel's live parts: server-sent events replace the graph, append log
// lines and job progress. No framework: a page names its stream in
// data-events.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var graph = document.getElementById("graph-box");
  if (graph) {
    var es = new EventSource(graph.dataset.events);
    es.addEventListener("graph", function (e) {
      graph.innerHTML = e.data;
      var rows = document.querySelectorAll("#machines tr[data-address]");
      var nodes = graph.querySelectorAll("g.node");
      var health = {};
      nodes.forEach(function (n) { health[n.dataset.address] = n.dataset.health; });
      rows.forEach(function (r) {
        var h = health[r.dataset.address];
        var cell = r.lastElementChild;
        if (h && cell) { cell.textContent = h; cell.className = "health " + h; }
      });
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    });
  }
  var log = document.getElementById("log");
  if (log) {
    var filter = document.getElementById("filter");
    var apply = function () {
      var f = filter.value;
      log.querySelectorAll("div").forEach(function (d) {
        d.hidden = f !== "" && d.textContent.indexOf(f) < 0;
      });
    };
    filter.addEventListener("input", apply);
    var logs = new EventSource(log.dataset.events);
    logs.addEventListener("line", function (e) {
      var d = document.createElement("div");
      d.textContent = e.data;
      log.appendChild(d);
      apply();
    });
  }
  var job = document.getElementById("job");
  if (job) {
    var result = document.getElementById("job-result");
    if (result.textContent !== "") { return; }
    var jobs = new EventSource(job.dataset.events);
    jobs.addEventListener("line", function (e) { job.textContent += e.data + "\n"; });
    jobs.addEventListener("done", function (e) {
      result.textContent = e.data;
      result.className = e.data;
      jobs.close();
    });
  }
});
