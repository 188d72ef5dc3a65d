#!/usr/bin/env python3
# outbox_seeds.py — turn captured outbox entries into fuzz seeds for fuzz_outbox.
#
#   redis-cli -p PORT MONITOR > monitor.txt    # while ticketd holds, pays, cancels
#   tests/fuzz/outbox_seeds.py monitor.txt tests/fuzz/corpus/fuzz_outbox
#
# Reads the XADD ... ["r" "<id>"] "m" "<msgpack>" lines that the Redis functions issue (redis-cli's
# quoted form: \xHH, \", \\, \n, \r, \t, \a, \b), writes each distinct payload as
# real_<n>, and derives a few malformed variants from the first one (truncated, one byte
# flipped, a status the decoder must refuse, trailing garbage).
import re
import sys

ESC = {'"': b'"', '\\': b'\\', 'n': b'\n', 'r': b'\r', 't': b'\t', 'a': b'\a', 'b': b'\b'}


def unquote(s):
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c == '\\' and s[i + 1] == 'x':
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif c == '\\':
            out += ESC[s[i + 1]]
            i += 2
        else:
            out += c.encode('utf-8')
            i += 1
    return bytes(out)


def main(monitor, outdir):
    seen = []
    for line in open(monitor, encoding='utf-8', errors='replace'):
        m = re.search(r'"XADD" "[^"]*" "\*" (?:"r" "[^"]*" )?"m" "((?:[^"\\]|\\.)*)"', line)
        if m:
            payload = unquote(m.group(1))
            if payload not in seen:
                seen.append(payload)
    for n, payload in enumerate(seen):
        open(f'{outdir}/real_{n}', 'wb').write(payload)
    if seen:
        first = seen[0]
        open(f'{outdir}/bad_truncated', 'wb').write(first[:len(first) // 2])
        open(f'{outdir}/bad_flipped', 'wb').write(first[:5] + bytes([first[5] ^ 0xff]) + first[6:])
        open(f'{outdir}/bad_trailing', 'wb').write(first + b'\xc0')
        open(f'{outdir}/bad_status', 'wb').write(first.replace(b'PENDING', b'PAYINGX', 1))
    print(f'{len(seen)} entries written to {outdir}')


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
