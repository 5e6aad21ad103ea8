# shellcheck shell=bash
# Sourced by every script under scripts/: paths, environment and the helpers they share.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export REPO_ROOT

# Stable, untranslated output from every tool and command we parse. C.UTF-8 rather than C:
# ansible-core refuses to start unless the locale encoding is UTF-8.
export LANG=C.UTF-8 LC_ALL=C.UTF-8

COLLECTION_NAMESPACE=dockerhost
COLLECTION_NAME=storage
VENV="${REPO_ROOT}/.venv"
BUILD_ROOT="${REPO_ROOT}/.build"
# ansible-test only accepts a collection that sits in ansible_collections/<namespace>/<name>, and
# resolves symlinks first, so the tree is a real copy of the repository.
COLLECTION_TREE="${BUILD_ROOT}/ansible_collections/${COLLECTION_NAMESPACE}/${COLLECTION_NAME}"
export VENV BUILD_ROOT COLLECTION_TREE

# dockerhost.storage resolves from the copy; collections bundled with the `ansible` package in the
# venv still resolve through the Python path.
export ANSIBLE_COLLECTIONS_PATH="${BUILD_ROOT}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() {
    printf '==> %s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Put the venv's tools first on PATH, as `source .venv/bin/activate` would.
activate_venv() {
    export VIRTUAL_ENV="${VENV}"
    case ":${PATH}:" in
        *":${VENV}/bin:"*) ;;
        *) export PATH="${VENV}/bin:${PATH}" ;;
    esac
}

# Create or refresh .venv (a no-op when requirements are unchanged), then activate it.
ensure_venv() {
    bash "${REPO_ROOT}/scripts/venv"
    activate_venv
}

# Relative paths (NUL-separated) of the files that make up the collection: tracked files plus
# untracked files that are not ignored, or, outside a git checkout, every file but the known
# working directories and outputs.
collection_files() {
    if git -C "${REPO_ROOT}" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        local path
        # Tracked files deleted in the work tree are still listed: keep only what exists.
        git -C "${REPO_ROOT}" ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' path; do
                if [[ -e "${REPO_ROOT}/${path}" || -L "${REPO_ROOT}/${path}" ]]; then
                    printf '%s\0' "${path}"
                fi
            done
    else
        (
            cd "${REPO_ROOT}" &&
                find . \( -name .git -o -name .venv -o -name .build -o -name .ansible \
                    -o -name __pycache__ -o -name .pytest_cache -o -name .ruff_cache \
                    -o -path ./tests/output -o -path ./benchmarks/results -o -path ./reports \) -prune \
                    -o \( -type f -o -type l \) -printf '%P\0'
        )
    fi
}

# Refresh ${COLLECTION_TREE} from the work tree. Files that are no longer part of the collection
# are removed; ansible-test's own tests/output/ in the copy is kept.
sync_collection_tree() {
    local wanted present
    wanted="$(mktemp)"
    present="$(mktemp)"
    collection_files | LC_ALL=C sort -z -u >"${wanted}"
    mkdir -p "${COLLECTION_TREE}"

    if command -v rsync >/dev/null 2>&1; then
        rsync -a --from0 --files-from="${wanted}" "${REPO_ROOT}/" "${COLLECTION_TREE}/"
    else
        # Before scripts/setup-host has run, rsync may be missing: copy everything.
        (cd "${REPO_ROOT}" && xargs -0 -r cp -a --parents -t "${COLLECTION_TREE}/" <"${wanted}")
    fi

    (
        cd "${COLLECTION_TREE}" &&
            find . \( -path ./tests/output -o -path ./.git \) -prune \
                -o \( -type f -o -type l \) -printf '%P\0'
    ) | LC_ALL=C sort -z >"${present}"
    LC_ALL=C comm -z -13 "${wanted}" "${present}" |
        (cd "${COLLECTION_TREE}" && xargs -0 -r rm -f --)
    find "${COLLECTION_TREE}" -mindepth 1 -type d -empty \
        ! -path "${COLLECTION_TREE}/tests/output" ! -path "${COLLECTION_TREE}/tests/output/*" \
        ! -path "${COLLECTION_TREE}/.git" ! -path "${COLLECTION_TREE}/.git/*" -delete
    rm -f "${wanted}" "${present}"

    # ansible-test lists a collection's files with git when it finds a .git at or above the
    # collection; above is this repository, where .build/ is ignored, so it would see no files.
    # An empty repository of its own makes it list every (untracked) file of the copy instead.
    if [[ ! -e "${COLLECTION_TREE}/.git" ]] && command -v git >/dev/null 2>&1; then
        git init --quiet "${COLLECTION_TREE}"
    fi
}

# ansible-test builds a venv per sanity test and installs its own pinned requirements there from
# PyPI, but first fetches get-pip.py from ci-files.testing.ansible.com, which these machines cannot
# reach. It takes that script from its cache when present: put a stand-in there that bootstraps
# pip with the interpreter's own ensurepip, then installs the pip release ansible-test asks for.
# A real get-pip.py already in the cache is left alone. Needs the venv active.
prepare_ansible_test() {
    local pip_version cache marker='# dockerhost.storage: get-pip stand-in'
    pip_version="$(python - <<'EOF'
import sys
from ansible_test._internal.python_requirements import get_venv_packages


class Python:
    version = "%d.%d" % sys.version_info[:2]


print(get_venv_packages(Python())["pip"])
EOF
)"
    cache="${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
    if [[ -f "${cache}" ]] && ! grep -qF "${marker}" "${cache}"; then
        return 0
    fi
    mkdir -p "$(dirname "${cache}")"
    cat >"${cache}.tmp" <<EOF
${marker} (written by scripts/lib.sh)
"""Bootstrap pip into an empty venv as get-pip.py would: pip install options and packages as
arguments, plus get-pip's own --no-setuptools and --no-wheel."""
import subprocess
import sys

args = sys.argv[1:]
pip_args = [arg for arg in args if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + pip_args)
if "--no-setuptools" in args:
    # ensurepip of Python < 3.12 also installs setuptools, which get-pip would have left out.
    subprocess.call(
        [sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"],
        stderr=subprocess.DEVNULL,
    )
EOF
    mv "${cache}.tmp" "${cache}"
}

# True in a CI run (CI=true, as .ci/run sets it): there a skipped test is a failure.
in_ci() {
    local value="${CI:-}"
    value="${value,,}"
    [[ "${value}" == true || "${value}" == 1 || "${value}" == yes ]]
}

# Seconds since the epoch, for timing steps.
now() {
    date +%s
}
