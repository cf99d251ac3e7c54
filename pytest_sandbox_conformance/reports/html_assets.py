"""The HTML report's inline style sheet and script (no network: nothing is fetched)."""

CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--skip:#9a6700;--err:#8250df;--nr:#6e7781;
--bg:#fff;--fg:#1f2328;--mute:#656d76;--line:#d0d7de;--soft:#f6f8fa;
--l-story:#fff8e6;--l-engine:#eef6ff;--l-poll:#f3f0ff;--l-driver:#f0fff4;--l-contract:#fff1f0}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;padding:0 24px 48px;max-width:1500px}
h1{font-size:22px;margin:20px 0 6px}h2{font-size:18px;margin:32px 0 8px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:16px;margin:0 0 6px}
code,pre,.mono{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.mute{color:var(--mute)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
color:#fff;vertical-align:middle}
.o-passed,.v-conformant{background:var(--pass)}.o-failed,.v-not-conformant{background:var(--fail)}
.o-skipped{background:var(--skip)}.o-error{background:var(--err)}
.o-not-run,.o-none,.v-incomplete,.o-incomplete{background:var(--nr)}
.o-held{background:#8fd19e}
.verdict{font-size:16px;padding:3px 12px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
dl.facts dt{color:var(--mute)}dl.facts dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse}
table.counts td,table.counts th{border:1px solid var(--line);padding:3px 10px;text-align:right}
table.counts th:first-child,table.counts td:first-child{text-align:left}
nav{margin:14px 0;padding:8px 12px;background:var(--soft);border-radius:6px}
nav a{margin-right:18px}
.legend span{margin-right:14px;white-space:nowrap}
table.matrix{font-size:12px}
table.matrix th.sc{white-space:nowrap;vertical-align:bottom;padding:2px 0;font-weight:normal}
table.matrix th.sc>div{writing-mode:vertical-rl;transform:rotate(180deg);margin:0 auto}
table.matrix th.req{text-align:left;padding:1px 8px 1px 0;white-space:nowrap;font-weight:normal}
table.matrix td{width:19px;min-width:19px;height:18px;text-align:center;border:1px solid #eaeef2;padding:0}
table.matrix td a{display:block;color:#fff;font-weight:700;text-decoration:none;line-height:18px}
td.c-passed{background:var(--pass)}td.c-failed{background:var(--fail)}
td.c-skipped{background:var(--skip)}td.c-error{background:var(--err)}
td.c-not-run{background:#afb8c1}td.c-held{background:#8fd19e}
table.matrix tr:hover th.req{background:#fff8c5}
article.failure{border:1px solid var(--line);border-left:5px solid var(--fail);
border-radius:6px;padding:12px 16px;margin:16px 0}
p.message{font-weight:600;margin:4px 0 10px}
.replay{display:flex;gap:8px;align-items:flex-start;margin:8px 0}
.replay code{flex:1;background:var(--soft);border:1px solid var(--line);border-radius:6px;
padding:6px 8px;white-space:pre-wrap;word-break:break-all}
button.copy{font:inherit;font-size:12px;padding:4px 10px;border:1px solid var(--line);
border-radius:6px;background:#f6f8fa;cursor:pointer}
.contract{background:#fffdf5;border:1px solid #eee3c4;border-radius:6px;padding:2px 12px;
margin:4px 0 8px}
.contract p{margin:6px 0}
ol.findings{margin:4px 0 10px;padding-left:22px}
ol.findings li{margin:2px 0}
table.lanes{width:100%;table-layout:fixed;margin-top:10px;font-size:12.5px}
table.lanes th{position:sticky;top:0;background:#fff;border-bottom:2px solid var(--line);
text-align:left;padding:4px 6px;font-size:12px;z-index:1}
table.lanes td{vertical-align:top;padding:3px 6px;border-bottom:1px solid #eaeef2;
overflow-wrap:anywhere}
table.lanes col.n{width:118px}
td.n .where{font-size:11px}
.caption{margin:12px 0 0;color:var(--mute)}
td.l-story{background:var(--l-story)}td.l-engine{background:var(--l-engine)}
td.l-poll{background:var(--l-poll)}td.l-driver{background:var(--l-driver)}
td.l-contract{background:var(--l-contract)}
tr.step td.l-story{font-weight:600}
tr.refused td.l-story{background:#ffebe9;color:#82071e}
tr.settle td,tr.note td,tr.run td{background:var(--soft);color:var(--mute);font-style:italic}
td.n{color:var(--mute);white-space:nowrap}
.ctr{display:inline-block;border:1px solid #b6d4f5;background:#fff;border-radius:4px;
padding:0 4px;margin:1px 2px 1px 0}
.ctr b{color:#0550ae}.ctr .st{font-style:italic}.ctr .st-running{color:var(--pass)}
.ctr .st-exited,.ctr .st-dead,.ctr .st-removing,.ctr .st-paused{color:var(--fail)}
.gpu{font-size:10px;background:#76b900;color:#fff;border-radius:3px;padding:0 3px}
td.disagree{box-shadow:inset 0 0 0 2px var(--fail);background:#ffebe9}
td.agree .eq{color:var(--pass)}
.ne{color:var(--fail)}
tr.finding td.f{background:#ffebe9;color:#82071e;font-weight:600}
tr.divergence{outline:3px solid var(--fail);outline-offset:-2px}
tr.divergence td.n{color:var(--fail);font-weight:700}
.divmark{display:block;font-size:10.5px;white-space:nowrap;color:#fff;background:var(--fail);border-radius:3px;
padding:0 4px;margin-top:2px;text-align:center}
tr.diag td{padding:0 6px 3px;background:#fbfbfb;border-bottom:1px solid #eaeef2}
tr.diag summary{color:var(--mute);font-size:12px;cursor:pointer}
tr.diag pre{margin:2px 0 4px;white-space:pre-wrap;max-height:320px;overflow:auto}
table.scenarios{width:100%}
table.scenarios td,table.scenarios th{border-bottom:1px solid #eaeef2;padding:3px 8px;
text-align:left;vertical-align:top}
table.scenarios tr:target{background:#fff8c5}
ul.items{margin:2px 0;padding-left:18px}
@media print{nav,button.copy{display:none}table.lanes th{position:static}}
"""

JS = """
document.addEventListener('click', function (e) {
  var b = e.target.closest('button.copy');
  if (!b) return;
  var text = document.getElementById(b.dataset.target).textContent;
  function done() { b.textContent = 'Copied'; setTimeout(function () { b.textContent = 'Copy'; }, 1500); }
  function fallback() {
    var r = document.createRange(); r.selectNodeContents(document.getElementById(b.dataset.target));
    var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
    try { document.execCommand('copy'); done(); } catch (err) { b.textContent = 'Select + copy'; }
  }
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
  else fallback();
});
"""
