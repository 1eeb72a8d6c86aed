# shellcheck shell=bash
# Sourced by scripts/up.sh and scripts/new-machine.sh: the secrets passphrase of the project's own
# state backend (.state/), so `make up` needs no manual setup.
#
# tfbox_passphrase PROJECT_DIR WHO
#   Only when PULUMI_BACKEND_URL is file://PROJECT_DIR/.state (another backend's stacks were made with
#   their team's passphrase: a generated one would lock everyone else out): make .state mode 700, and
#   unless PULUMI_CONFIG_PASSPHRASE(_FILE) is set, export PULUMI_CONFIG_PASSPHRASE_FILE=.state/passphrase,
#   creating that file if it is missing: atomically (written under a temporary name, then link(2), which
#   never overwrites and never follows a symlink), mode 600. An existing passphrase is never replaced;
#   a symlink or an empty/odd file there is refused, since it would decrypt (or lose) the stack's secrets.
tfbox_passphrase() {
  local dir=$1 who=$2
  local state=$dir/.state
  local file=$state/passphrase tmp
  [[ ${PULUMI_BACKEND_URL:-} == "file://$state" || ${PULUMI_BACKEND_URL:-} == "file://$state/" ]] || return 0
  if [[ -L $state ]]; then
    echo "$who: $state is a symlink; refusing to keep secrets through it (make it a directory)" >&2
    return 1
  fi
  if [[ ! -d $state ]]; then
    mkdir -m 700 "$state" 2>/dev/null || [[ -d $state && ! -L $state ]] || return 1 # another run may have made it
  fi
  chmod 700 "$state" || return 1
  [[ -z ${PULUMI_CONFIG_PASSPHRASE:-} && -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} ]] || return 0
  if [[ ! -e $file && ! -L $file ]]; then
    tmp=$(mktemp "$state/.passphrase.XXXXXX") || return 1 # O_EXCL, mode 600, in our 700 directory
    if ! head -c 32 /dev/urandom | base64 >"$tmp"; then
      rm -f "$tmp"
      return 1
    fi
    if ln "$tmp" "$file" 2>/dev/null; then
      echo "$who: generated the secrets passphrase in $file (keep it: it decrypts this project's stack secrets)" >&2
    fi # else another run made it meanwhile: use theirs
    rm -f "$tmp"
  fi
  if [[ -L $file || ! -f $file || ! -s $file ]]; then
    echo "$who: $file is not a non-empty regular file; refusing to use or replace it." >&2
    echo "$who: Fix: restore the passphrase file, or set PULUMI_CONFIG_PASSPHRASE_FILE to the file that holds it" >&2
    return 1
  fi
  chmod 600 "$file" || return 1
  export PULUMI_CONFIG_PASSPHRASE_FILE=$file
}
