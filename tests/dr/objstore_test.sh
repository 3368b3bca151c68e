#!/usr/bin/env bash
# The object-store tests (ctest -L dr): BUILD_DIR/bin/test_objstore runs the
# whole of src/objstore.h against
#   1. a fresh directory (file://),
#   2. s3rver (tests/dr/package.json) behind sigv4_proxy.py, path style,
#      credentials and a session token from the environment,
#   3. the same, virtual-host style (BUCKET.s3.localhost), credentials from
#      a shared credentials file,
# and fails if the proxy refused any of their requests (a bad signature or
# payload hash). Last, it proves the proxy can refuse: a store whose
# credentials file holds a wrong secret must get SignatureDoesNotMatch.
#
#   tests/dr/objstore_test.sh [BUILD_DIR]      (default: build)
#   OBJSTORE_BENCH_MIB=100 tests/dr/objstore_test.sh BUILD_DIR
#       also times puts and a get of a 100 MiB object through the proxy and
#       directly against s3rver (not part of the test).
#
# Needs node, npm, the npm modules here and python3-botocore. As root it
# runs deploy/deps.sh --test first, which installs whatever is missing;
# otherwise it exits 77 (ctest: skipped) when something is missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
bin=$build/bin/test_objstore
bucket=cairn-dr-test
python=/usr/bin/python3 # Debian's, which has python3-botocore

if [[ $(id -u) -eq 0 ]]; then
  # Installs missing packages, and runs npm ci here when the lockfile
  # changed since the last one.
  "$repo/deploy/deps.sh" --test >&2
fi
missing=()
command -v node >/dev/null || missing+=(node)
[[ -x $here/node_modules/.bin/s3rver ]] || missing+=("tests/dr/node_modules (npm ci)")
"$python" -c 'import botocore' 2>/dev/null || missing+=(python3-botocore)
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "FAIL: missing after deploy/deps.sh --test: ${missing[*]}" >&2
    exit 1
  fi
  echo "SKIP: missing ${missing[*]} (deploy/deps.sh --test installs them)" >&2
  exit 77
fi

tmp=$(mktemp -d /tmp/cairn-dr.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free port in 26000-26999 (the range the tests may use).
used_ports=" "
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((26000 + RANDOM % 1000))
    [[ $used_ports == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports+="$p "
      echo "$p"
      return 0
    fi
  done
  echo "no free port in 26000-26999" >&2
  return 1
}
wait_port() { # port pid name
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "FAIL: $3 exited before listening on $1" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "FAIL: $3 is not listening on $1 after 20 s" >&2
  return 1
}

echo "== file://"
mkdir "$tmp/files"
"$bin" "file://$tmp/files"

s3_port=$(free_port)
proxy_port=$(free_port)
access_key=S3RVER # s3rver's account; it refuses others (but checks no signature)
secret=cairn-test-secret
token=cairn-test-session-token
mkdir "$tmp/s3"
# --service-endpoint localhost: Host BUCKET.s3.localhost selects the bucket
# (virtual-host style). --configure-bucket must come last. s3rver makes its
# ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its
# legacy provider: without it, any listing that needs a second page fails
# with 500 InternalError.
NODE_OPTIONS=--openssl-legacy-provider "$here/node_modules/.bin/s3rver" -d "$tmp/s3" -a 127.0.0.1 -p "$s3_port" --silent \
  --service-endpoint localhost --configure-bucket "$bucket" &
pids+=($!)
wait_port "$s3_port" "$!" s3rver
"$python" "$here/sigv4_proxy.py" --listen "$proxy_port" --target "$s3_port" \
  --access-key "$access_key" --secret "$secret" --session-token "$token" \
  --region eu-west-3 2>"$tmp/proxy.log" &
pids+=($!)
wait_port "$proxy_port" "$!" sigv4_proxy.py

stats() { # field
  curl -sf "http://127.0.0.1:$proxy_port/__sigv4_proxy/stats" |
    "$python" -c "import json, sys; print(json.load(sys.stdin)['$1'])"
}
check_rejected() { # want
  local got
  got=$(stats rejected)
  if [[ $got != "$1" ]]; then
    echo "FAIL: sigv4_proxy.py rejected $got requests, want $1:" >&2
    cat "$tmp/proxy.log" >&2
    exit 1
  fi
}

echo "== s3:// path style, credentials from the environment"
env -u AWS_SHARED_CREDENTIALS_FILE -u AWS_PROFILE -u AWS_DEFAULT_REGION \
  AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token \
  AWS_REGION=eu-west-3 \
  "$bin" --endpoint "http://127.0.0.1:$proxy_port" "s3://$bucket/path-style"
check_rejected 0

echo "== s3:// virtual-host style, credentials from a file"
cat >"$tmp/credentials" <<EOF
[other]
aws_access_key_id = NOT-THIS-ONE
aws_secret_access_key = nor-this

[cairn]
aws_access_key_id = $access_key
aws_secret_access_key = $secret
aws_session_token = $token
EOF
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_REGION \
  AWS_PROFILE=cairn AWS_DEFAULT_REGION=eu-west-3 AWS_SHARED_CREDENTIALS_FILE="$tmp/credentials" \
  "$bin" --endpoint "http://s3.localhost:$proxy_port" --path-style 0 "s3://$bucket/vhost"
check_rejected 0
echo "sigv4_proxy.py: $(stats accepted) requests checked and accepted, none rejected"

echo "== s3:// listing keys that XML must escape"
# Keys that objstore never writes but another tool may: put straight into
# s3rver, they come back in ListObjectsV2 as &amp; &lt; &gt; and must be
# decoded. (s3rver checks no signature; curl signs anyway.)
for key in "ent/a%26b" "ent/c%3Cd%3E" "ent/q%22u%27o%20te"; do
  curl -sf -o /dev/null --aws-sigv4 "aws:amz:eu-west-3:s3" -u "$access_key:$secret" \
    -H "x-amz-content-sha256: $(printf 12345 | sha256sum | cut -d' ' -f1)" -T <(printf 12345) \
    "http://127.0.0.1:$s3_port/$bucket/xml/$key"
done
got=$(AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token \
  AWS_REGION=eu-west-3 "$bin" --list ent/ --endpoint "http://127.0.0.1:$proxy_port" \
  "s3://$bucket/xml")
want=$'ent/a&b 5\nent/c<d> 5\nent/q"u\'o te 5'
if [[ $got != "$want" ]]; then
  echo "FAIL: listing escaped keys: got"$'\n'"$got"$'\n'"want"$'\n'"$want" >&2
  exit 1
fi
check_rejected 0

echo "== s3:// with a wrong secret: the proxy must refuse it"
sed "s/= $secret\$/= not-the-secret/" "$tmp/credentials" >"$tmp/wrong"
AWS_PROFILE=cairn "$bin" --expect-auth-failure --credentials "$tmp/wrong" --region eu-west-3 \
  --endpoint "http://127.0.0.1:$proxy_port" "s3://$bucket/auth"
check_rejected 1

echo "== the proxy itself: a body that is not the one hashed is refused, a cut one is not judged"
# So that "rejected 0" above means something: a PUT signed for one body that
# carries another must be refused...
curl -s -o /dev/null --aws-sigv4 "aws:amz:eu-west-3:s3" -u "$access_key:$secret" \
  -H "x-amz-security-token: $token" \
  -H "x-amz-content-sha256: $(printf 12345 | sha256sum | cut -d' ' -f1)" -T <(printf 54321) \
  "http://127.0.0.1:$proxy_port/$bucket/proxy/swapped"
check_rejected 2
# ...while a sender that dies mid-body (a killed node) is counted apart.
"$python" - "$proxy_port" "$bucket" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"PUT /%s/proxy/cut HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
          % sys.argv[2].encode() + b"x" * 1000)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
PY
check_rejected 2
if [[ $(stats incomplete) != 1 ]]; then
  echo "FAIL: sigv4_proxy.py counted $(stats incomplete) cut bodies, want 1" >&2
  exit 1
fi

if [[ -n ${OBJSTORE_BENCH_MIB:-} ]]; then
  echo "== bench: ${OBJSTORE_BENCH_MIB} MiB through sigv4_proxy.py"
  AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token \
    AWS_REGION=eu-west-3 "$bin" --bench "$OBJSTORE_BENCH_MIB" \
    --endpoint "http://127.0.0.1:$proxy_port" "s3://$bucket/bench"
  echo "== bench: ${OBJSTORE_BENCH_MIB} MiB straight to s3rver"
  AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret AWS_REGION=eu-west-3 \
    "$bin" --bench "$OBJSTORE_BENCH_MIB" --endpoint "http://127.0.0.1:$s3_port" "s3://$bucket/bench"
  echo "== bench: ${OBJSTORE_BENCH_MIB} MiB to a directory"
  mkdir "$tmp/bench"
  "$bin" --bench "$OBJSTORE_BENCH_MIB" "file://$tmp/bench"
  check_rejected 2
fi
echo "ok: objstore against file:// and s3:// (path and virtual-host style)"
