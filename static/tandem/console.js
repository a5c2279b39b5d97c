// The console's charts, drawn with the vendored Chart.js from the figures the page embeds
// (#console-chart, json_script). Values show on hover; the same numbers are in the table below the
// charts and in the CSV exports.
(function () {
  "use strict";
  var source = document.getElementById("console-chart");
  if (!source || !window.Chart) return;
  var data = JSON.parse(source.textContent);
  var colours = {
    small: "#1f883d", large: "#8250df", people: "#bf8700",
    bot_only: "#1f883d", with_people: "#bf8700",
    rate: "#cf222e", baseline: "#57606a",
  };
  var others = ["#0969da", "#cf222e", "#8250df", "#bf8700", "#1a7f37", "#57606a", "#e16f24", "#6639ba", "#0550ae", "#a40e26"];
  var names = {
    small: "Small model", large: "Large model", people: "People",
    bot_only: "No person needed", with_people: "With people",
  };

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;

  function stacked(canvasId, series, options) {
    var canvas = document.getElementById(canvasId);
    if (!canvas) return null;
    var datasets = Object.keys(series).map(function (key, index) {
      return {
        type: "bar",
        label: names[key] || key,
        data: series[key],
        backgroundColor: colours[key] || others[index % others.length],
        stack: "total",
        yAxisID: "y",
        order: 2,
      };
    });
    (options.lines || []).forEach(function (line) {
      datasets.push({
        type: "line",
        label: line.label,
        data: line.data,
        borderColor: line.colour,
        backgroundColor: line.colour,
        pointRadius: data.labels.length > 60 ? 0 : 2,
        borderWidth: 2,
        yAxisID: line.axis || "y",
        order: 1,
      });
    });
    var scales = {
      x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } },
      y: { stacked: true, beginAtZero: true, title: { display: true, text: options.y } },
    };
    if (options.y2) {
      scales.y2 = {
        position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
        title: { display: true, text: options.y2 },
      };
    }
    return new Chart(canvas, {
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: options.tooltip || {} },
        },
        scales: scales,
      },
    });
  }

  function latency(canvasId, series) {
    var canvas = document.getElementById(canvasId);
    if (!canvas) return null;
    var kinds = { small: "Small model", large_first_token: "Large: first token", large: "Large: whole answer", agent: "Agents" };
    var tints = { small: colours.small, large_first_token: "#a475f9", large: colours.large, agent: colours.people };
    var datasets = [];
    Object.keys(kinds).forEach(function (kind) {
      if (!series[kind]) return;
      ["p50", "p95"].forEach(function (which) {
        datasets.push({
          label: kinds[kind] + " " + which,
          data: series[kind][which],
          borderColor: tints[kind],
          backgroundColor: tints[kind],
          borderDash: which === "p95" ? [5, 4] : [],
          pointRadius: data.labels.length > 60 ? 0 : 2,
          borderWidth: 2,
          spanGaps: true,
        });
      });
    });
    return new Chart(canvas, {
      type: "line",
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: { label: function (context) { return context.dataset.label + ": " + readable(context.parsed.y); } } },
        },
        scales: {
          x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } },
          y: {
            type: "logarithmic",
            title: { display: true, text: "time (log scale)" },
            ticks: {
              autoSkip: true,
              maxTicksLimit: 6,
              // Only the round values of each decade (1, 10, 100 ms, 1 s, 10 s …) are labelled.
              callback: function (value) { return /^1/.test(String(value)) ? readable(value) : ""; },
            },
          },
        },
      },
    });
  }

  function readable(milliseconds) {
    if (milliseconds === null || milliseconds === undefined) return "—";
    if (milliseconds < 1000) return Math.round(milliseconds) + " ms";
    if (milliseconds < 60000) return (milliseconds / 1000).toFixed(1) + " s";
    if (milliseconds < 3600000) return (milliseconds / 60000).toFixed(1) + " min";
    return (milliseconds / 3600000).toFixed(1) + " h";
  }

  function usd(context) {
    return context.dataset.label + ": $" + Number(context.parsed.y).toFixed(6);
  }

  window.tandemCharts = [
    stacked("chart-destinations", data.destinations, { y: "customer messages" }),
    stacked("chart-escalations", data.escalations, {
      y: "escalated messages",
      y2: "% of messages escalated",
      lines: [{ label: "Escalation rate (%)", data: data.escalation_rate, colour: colours.rate, axis: "y2" }],
    }),
    stacked("chart-cost", data.cost, {
      y: "USD",
      lines: [{ label: "Everything to the large model", data: data.baseline, colour: colours.baseline }],
      tooltip: { label: usd },
    }),
    stacked("chart-resolution", data.conversations, { y: "conversations started" }),
    latency("chart-latency", data.latency),
  ];
  document.body.dataset.chartsDrawn = String(window.tandemCharts.filter(Boolean).length);
})();
