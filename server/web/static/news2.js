// NEWS2 as the vitals are typed: the server scores them (schema.news2), never this script.
(function () {
  var form = document.querySelector("form[data-news2]");
  if (!form) return;
  var out = document.getElementById("news2"), advice = document.getElementById("advice-112");
  var names = ["resp_rate", "spo2", "supplemental_o2", "temperature", "systolic_bp", "pulse", "consciousness",
               "retts_colour"];
  var pending = null;
  function update() {
    var query = new URLSearchParams();
    names.forEach(function (name) {
      var field = form.elements[name];
      if (field && field.value !== "") query.set(name, field.value);
    });
    fetch(form.dataset.news2 + "?" + query.toString(), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (body) {
        out.textContent = body.text;
        advice.hidden = !body.consider_112;
      });
  }
  form.addEventListener("input", function () { clearTimeout(pending); pending = setTimeout(update, 150); });
  form.addEventListener("change", update);
  update();
})();
