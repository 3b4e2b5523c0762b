#!/usr/bin/env bash
# fetch-official.sh [OUT]: download the official ResNet-50 Caffe weights released with
# "Deep Residual Learning for Image Recognition" (KaimingHe/deep-residual-networks), check
# their checksums and convert them into OUT (default weights/resnet50). `make weights` runs it.
#
# Downloads go to weights/downloads/ and are reused when their checksums match. The deploy
# prototxt and the labels come from the repository (weights/prototxt, weights/synset_words.txt).
# Without network it fails with a message that says what to download by hand and how to convert
# it, and how to get the synthetic (random-weight) model instead.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${1:-weights/resnet50}
dl=weights/downloads
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} GOEXPERIMENT=${GOEXPERIMENT:-simd}

# Addresses and checksums: weights/OFFICIAL.md (the OpenVINO Open Model Zoo records).
model=ResNet-50-model.caffemodel
model_sha256=44ee2b08816cede2b7aaa047888df07dcab52f73399aa1c8bef05a17bfdd4888
model_urls=(
  "https://onedrive.live.com/download?cid=4006CBB8476FF777&resid=4006CBB8476FF777%2117895&authkey=AAFW2-FVoxeVRck"
  "https://www.deepdetect.com/models/resnet/ResNet-50-model.caffemodel"
)
mean=ResNet_mean.binaryproto
mean_sha1=0b056fd4444f0ae1537af646ba736edf0d4cefaf
mean_urls=("https://www.deepdetect.com/models/resnet/ResNet_mean.binaryproto")
prototxt=weights/prototxt/ResNet-50-deploy.prototxt
labels=weights/synset_words.txt

convert_cmd="go run ./tools/convert -force -name ResNet-50 -caffemodel $dl/$model -prototxt $prototxt -mean $dl/$mean -labels $labels -out $out"

digest() { # digest ALGO FILE -> hex
  if command -v "${1}sum" >/dev/null 2>&1; then "${1}sum" "$2" | cut -d' ' -f1
  else shasum -a "${1#sha}" "$2" | cut -d' ' -f1; fi
}

# curl draws its progress bar only when stderr is a terminal; in a pipe or a log
# a download is a line before and a line after, nothing in between.
curl_progress=(-sS)
if [[ -t 2 ]]; then curl_progress=(--progress-bar); fi

# fetch NAME ALGO SUM URL...: download NAME into $dl unless a good copy is there.
fetch() {
  local name=$1 algo=$2 want=$3; shift 3
  local dst=$dl/$name
  if [[ -f $dst && $(digest "$algo" "$dst") == "$want" ]]; then
    echo "fetch-official: $dst already downloaded ($algo ok)"
    return 0
  fi
  mkdir -p "$dl"
  local url
  for url in "$@"; do
    echo "fetch-official: downloading $name from ${url%%\?*}"
    if curl -fL "${curl_progress[@]}" --connect-timeout 10 --retry 1 --retry-delay 2 -o "$dst.part" "$url"; then
      local got
      got=$(digest "$algo" "$dst.part")
      if [[ $got == "$want" ]]; then
        mv "$dst.part" "$dst"
        echo "fetch-official: downloaded $name from ${url%%\?*} ($(wc -c <"$dst") bytes, $algo ok)"
        return 0
      fi
      echo "fetch-official: $name from ${url%%\?*} has $algo $got, want $want: discarded" >&2
    fi
    rm -f "$dst.part"
  done
  return 1
}

offline() {
  cat >&2 <<EOF

fetch-official: could not download $1.
Download these files by hand into $dl/ (addresses and checksums: weights/OFFICIAL.md):

  $model  (102,462,397 bytes, sha256 $model_sha256)
    ${model_urls[0]}
    ${model_urls[1]}
  $mean  (sha1 $mean_sha1)
    ${mean_urls[0]}

then convert them with:

  $convert_cmd

(without the mean file, replace "-mean $dl/$mean" by "-mean-values 104,117,123").
To get a model with random weights instead (meaningless predictions, same shapes): make synthetic
EOF
  exit 1
}

fetch "$model" sha256 "$model_sha256" "${model_urls[@]}" || offline "$model"
fetch "$mean" sha1 "$mean_sha1" "${mean_urls[@]}" || offline "$mean"

echo "fetch-official: $convert_cmd"
$convert_cmd
