#!/bin/bash
# check-report.sh - the HTML report in a real browser (make check-report).
#
# A real run: 20 python3 threads resolving one name (fake resolver, held
# until every follower joined) and 20 pycurl threads fetching one URL from
# tests/fixtures/sf_httpd (held likewise), with SFSHIM_STATS=json: and
# SFSHIM_TRACE.  scripts/sfshim-report turns that into a page; headless
# chromium loads it (--dump-dom: the DOM after parsing and layout) and the
# numbers it shows must be those of the JSON stats: flights, followers,
# answers shared, per API and in all, and one drawn flight per key with one
# release mark per follower.
#
#   SF_SCREENSHOT=FILE.png  also saves a screenshot of the page (this is how
#                           tests/report/report.png, shown in README, is made)
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/common.bash
. tests/integration/http.bash
. tests/integration/trace.bash
HOSTS_EXTRA="192.0.2.10 api.example.test"
sf_private_world "$0" "$@"

N=20
export SF_WAIT_SECS=${SF_WAIT_SECS:-120}
fail() {
	echo "FAIL: $*"
	exit 1
}
BROWSER=$(command -v chromium || command -v chromium-browser || true)
[ -n "$BROWSER" ] || fail "chromium not found (scripts/install-deps.sh installs it)"

run=$SF_TMP/run
mkdir "$run"
sf_herd_dns "$run" "$N" api.example.test 127.0.0.1 || fail "dns herd"
sf_start_httpd "$SF_TMP/origin.log"
sf_herd_curl "$run" "$N" "/bytes/200000?gate=report&delay=0" || fail "curl herd"

page=$SF_TMP/report.html
"$SF_PY" scripts/sfshim-report -o "$page" --stats "$run/stats.jsonl" \
	"$run/dns.trace.json" "$run/curl.trace.json" || fail "sfshim-report"

browse() {
	local profile
	profile=$(mktemp -d "$SF_TMP/chromium.XXXXXX")
	timeout -s KILL 120 "$BROWSER" --headless --no-sandbox --disable-gpu \
		--disable-background-networking --no-first-run --disable-dev-shm-usage \
		--user-data-dir="$profile" "$@" "file://$page" 2>"$SF_TMP/chromium.err"
}
browse --dump-dom >"$SF_TMP/dom.html" || {
	tail -20 "$SF_TMP/chromium.err"
	fail "chromium could not load the page"
}

"$SF_PY" - "$SF_TMP/dom.html" "$run/stats.jsonl" "$N" "$run"/*.trace.json <<'PYEOF' || fail "the page does not show the stats"
import html.parser, json, re, sys

dom, stats, n, traces = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]

class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.cur, self.flights, self.releases = {}, None, 0, 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.cur = a["id"]
            self.ids[self.cur] = ""
        if tag == "g" and a.get("class") == "flight":
            self.flights += 1
        if tag == "line" and a.get("class") == "release":
            self.releases += 1
    def handle_data(self, data):
        if self.cur:
            self.ids[self.cur] += data
    def handle_endtag(self, tag):
        self.cur = None

text = open(dom, encoding="utf-8").read()
# SVG shapes hold nothing but their tooltip: anything else inside one means
# the browser parsed the drawing differently from what was meant.
bad = re.search(r'<(line|rect)\b[^>]*>\s*<(?!title|/line|/rect)', text)
assert not bad, "malformed drawing near: " + text[bad.start():bad.start() + 120]
p = Page()
p.feed(text)
assert p.ids, "no summary in the DOM (did the page load?)"
lines = [json.loads(l) for l in open(stats)]
want = {}
for api in ("dns", "curl"):
    for k in ("flights", "followers", "saved_calls", "flights_shared"):
        want["sum-%s-%s" % (api, k.replace("_", "-"))] = sum(
            l["api"][api][k] for l in lines)
want["sum-all-flights"] = want["sum-dns-flights"] + want["sum-curl-flights"]
want["sum-all-followers"] = want["sum-dns-followers"] + want["sum-curl-followers"]
want["sum-processes"] = len(lines)
for k, v in sorted(want.items()):
    got = p.ids.get(k)
    assert got is not None and int(got) == v, "%s: page shows %r, stats say %d" % (k, got, v)
# The run itself: one flight of n per API, all followers shared (python or
# libcurl may resolve a name of their own, alone: a flight without
# followers).
assert want["sum-dns-flights-shared"] == 1 and want["sum-dns-followers"] == n - 1, want
assert want["sum-curl-flights"] == 1 and want["sum-curl-followers"] == n - 1, want
drawn = set()
for t in traces:
    d = json.load(open(t))
    drawn |= {(e["pid"], e["args"]["flight"]) for e in d["traceEvents"]
              if e["ph"] == "X" and "flight" in e["args"]}
assert p.flights == len(drawn), "drawn flights: %d, traced: %d" % (p.flights, len(drawn))
assert p.releases == 2 * (n - 1), "release marks: %d" % p.releases
print("report: chromium shows flights dns=%d curl=%d, followers dns=%d curl=%d "
      "(as the stats say), %d flights drawn, %d release marks" %
      (want["sum-dns-flights"], want["sum-curl-flights"], want["sum-dns-followers"],
       want["sum-curl-followers"], p.flights, p.releases))
PYEOF

if [ -n "${SF_SCREENSHOT:-}" ]; then
	browse --hide-scrollbars --window-size=1240,1400 --screenshot="$SF_TMP/shot.png" ||
		fail "screenshot"
	cp "$SF_TMP/shot.png" "$SF_SCREENSHOT"
	echo "report: screenshot saved to $SF_SCREENSHOT"
fi
echo "check-report: ok"
