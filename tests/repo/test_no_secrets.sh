#!/usr/bin/env bash
# test_no_secrets.sh — fails when a file tracked in the repository holds a value that
# looks like a real secret: a private key block, a cloud access key, or a long random
# value assigned to something named *SECRET*, *TOKEN*, *PASSWORD* or *_KEY.
#
# Allowed by name, and only these: the tests' throw-away values (they start with
# "tk-test-only-"), the "change-me" placeholders of .env.example, and compose's
# ${VARIABLE} references. The original Ticketonline committed its database password and
# Django secret key; this test is why ticketd cannot.
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files --cached --others --exclude-standard)
else
    mapfile -t files < <(find . -type f -not -path './build*' -not -path './.data/*' -not -path './.git/*')
fi

checked=0
failures=0
report() {
    echo "possible secret in $1: $2"
    failures=$((failures + 1))
}

for f in "${files[@]}"; do
    [[ -f "$f" ]] || continue
    grep -Iq . "$f" 2>/dev/null || continue # skip binaries and empty files
    checked=$((checked + 1))
    if grep -nE -- '-----BEGIN ([A-Z]+ )?PRIVATE KEY-----|AKIA[0-9A-Z]{16}' "$f" >/tmp/tk_secret_hits.$$ 2>/dev/null; then
        report "$f" "$(head -1 /tmp/tk_secret_hits.$$)"
    fi
    # NAME = value / NAME: value / NAME=value, where NAME mentions a secret and the value
    # is 16+ characters of token alphabet
    while IFS= read -r hit; do
        value=$(sed -E 's/^[^:]*:[0-9]+:.*(SECRET|TOKEN|PASSWORD|PASSWD|_KEY)[A-Z_]*["'\'']?[[:space:]]*[:=][[:space:]]*["'\'']?//I' <<<"$hit")
        value=${value%%[\"\' ;,]*}
        case "$value" in
        tk-test-only-* | change-me* | '${'* | '$('* | '' | *'%'* | *'<'*) continue ;;
        esac
        [[ ${#value} -ge 16 && "$value" =~ ^[A-Za-z0-9+/_=.-]+$ ]] || continue
        report "$f" "$hit"
    done < <(grep -HnIiE '(SECRET|TOKEN|PASSWORD|PASSWD|_KEY)[A-Z_]*["'\'']?[[:space:]]*[:=][[:space:]]*["'\'']?[A-Za-z0-9+/_=.-]{16,}' "$f" 2>/dev/null || true)
done
rm -f /tmp/tk_secret_hits.$$

echo "checked $checked files for committed secrets"
if ((failures)); then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "1 passed, 0 failed"
