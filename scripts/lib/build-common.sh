# Sourced by the build-*.sh scripts: the cache they build into, one build at a
# time per machine, and Kubernetes commands built from the k8s.io/kubernetes module.

cache_dir="${BREAKWATER_CACHE_DIR:-$HOME/.cache/breakwater}"

# Holds the machine-wide build lock until the script exits: two test files (or
# two CI runs) that need the same binaries build them once, not twice at once
# racing on the output files.
take_build_lock() {
  mkdir -p "$cache_dir"
  exec 9>"$cache_dir/.build.lock"
  flock 9
}

# build_kubernetes_commands OUT VERSION CMD...: builds k8s.io/kubernetes/cmd/CMD
# for each CMD into OUT, from a main module that requires k8s.io/kubernetes and
# pins its staging modules (k8s.io/api, k8s.io/apiserver, ...) from v0.0.0 to
# v0.<minor>.<patch>. Same flags for every command, so the Go build cache is shared.
build_kubernetes_commands() {
  local out=$1 version=$2; shift 2
  local minor=${version#*.}; minor=${minor%%.*}
  local dir; dir=$(mktemp -d)
  (
    cd "$dir"
    go mod init breakwater.dev/kubernetes >/dev/null 2>&1
    local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    for staging in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"); do
      go mod edit -replace="$staging=$staging@v0.${version#*.}"
    done
    go mod edit -require="k8s.io/kubernetes@v$version"
    { printf 'package tools\n\n'; for cmd in "$@"; do printf 'import _ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done; } > tools.go
    go mod tidy >/dev/null 2>&1
    local pkg=k8s.io/component-base/version
    for cmd in "$@"; do
      go build -trimpath -o "$out/$cmd" \
        -ldflags "-s -w -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z" \
        "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  rm -rf "$dir"
}
