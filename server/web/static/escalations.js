// Escalations make themselves noticed: the banner comes with the board; a browser notification, when allowed.
(function () {
  var board = document.getElementById("board"), button = document.getElementById("notify");
  if (!board) return;
  function newest() { var e = document.getElementById("escalations"); return e ? e.dataset.newest : ""; }
  var seen = newest();
  if ("Notification" in window && Notification.permission === "default") {
    button.hidden = false;
    button.addEventListener("click", function () { Notification.requestPermission(); button.hidden = true; });
  }
  new MutationObserver(function () {
    var now = newest();
    if (now && now !== seen) {
      var banner = document.querySelector("#escalations .banner");
      if ("Notification" in window && Notification.permission === "granted" && banner) {
        new Notification("hemsync", {body: banner.textContent});
      }
    }
    seen = now;
  }).observe(board, {childList: true, subtree: true});
})();
