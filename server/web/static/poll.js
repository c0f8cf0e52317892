// Live parts: every element with data-poll is refreshed from its URL every 2 s (see docs/web.md, "Live").
(function () {
  document.querySelectorAll("[data-poll]").forEach(function (part) {
    function refresh() {
      fetch(part.dataset.poll, {credentials: "same-origin"})
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
        .then(function (html) { if (html !== part.dataset.last) { part.innerHTML = html; part.dataset.last = html; } })
        .catch(function () {})
        .finally(function () { setTimeout(refresh, 2000); });
    }
    setTimeout(refresh, 2000);
  });
})();
