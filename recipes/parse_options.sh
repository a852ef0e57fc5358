# Sourced by recipes/*/run.sh after their defaults: `--some-name VALUE` sets the variable some_name.
# Only the names listed in the script's $options are accepted, so a typo is an error rather than a
# silently ignored flag; `--help` prints the script's header comment.
# shellcheck shell=bash disable=SC2154
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help)
      sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0 ;;
    --*)
      name=${1#--}
      name=${name//-/_}
      if [[ " $options " != *" $name "* ]]; then
        echo "$(basename "$(dirname "$0")")/run.sh: unknown option $1 (options: --${options// / --})" >&2
        exit 2
      fi
      if [ $# -lt 2 ]; then
        echo "$(basename "$(dirname "$0")")/run.sh: $1 needs a value" >&2
        exit 2
      fi
      printf -v "$name" '%s' "$2"
      shift 2 ;;
    *)
      echo "$(basename "$(dirname "$0")")/run.sh: unexpected argument $1 (options take the form --name value)" >&2
      exit 2 ;;
  esac
done
unset name
