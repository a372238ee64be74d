// Light or dark before first paint: the saved choice, else the system's preference.
(function () {
  var apply = function () {
    var saved = localStorage.getItem('mk-theme');
    var dark = saved ? saved === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  };
  apply();
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', function () {
    apply();
    window.dispatchEvent(new Event('mk-theme'));
  });
  window.mkApplyTheme = apply;
})();
