# bash completion for daust: commands, remote/all, options, and the names
# of the nodes the local daemon knows (asked once per completion, quickly).
#
#   source contrib/daust-completion.bash      (or copy it to
#   /etc/bash_completion.d/daust)

_daust_nodes() {
  local args=()
  [ -n "${_daust_state_dir:-}" ] && args+=(--state-dir "$_daust_state_dir")
  [ -n "${_daust_socket:-}" ] && args+=(--socket "$_daust_socket")
  daust "${args[@]}" list --json --timeout 1s 2>/dev/null |
    sed -n 's/^ *"name": "\([^"]*\)",\{0,1\}$/\1/p' | sort -u
}

_daust() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local commands="ping list trace info stop join forget keys keygen top events help daemon"
  local options="--json --timeout --state-dir --socket -v --help --version"
  local i w cmd= _daust_state_dir= _daust_socket=
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case $w in
      --state-dir) _daust_state_dir=${COMP_WORDS[i+1]} ;;
      --socket) _daust_socket=${COMP_WORDS[i+1]} ;;
    esac
    case " $commands " in *" $w "*) [ -z "$cmd" ] && cmd=$w ;; esac
  done
  case $prev in
    --state-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --timeout) COMPREPLY=($(compgen -W "1s 5s 30s" -- "$cur")); return ;;
    remote|forget) COMPREPLY=($(compgen -W "$(_daust_nodes)" -- "$cur")); return ;;
  esac
  if [ "$cmd" = daemon ]; then
    COMPREPLY=($(compgen -W "-d -e -k -p -i -l -v --bind --state-dir --socket --name --tag --heartbeat --forget-after --key-file --on-event --hook-timeout --metrics --help" -- "$cur"))
    return
  fi
  case $cur in
    -*) COMPREPLY=($(compgen -W "$options --dot --once --width" -- "$cur")); return ;;
  esac
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "$commands remote all" -- "$cur"))
  else
    case $cmd in
      ping|list|trace|info|stop|keys)
        COMPREPLY=($(compgen -W "remote all $(_daust_nodes)" -- "$cur")) ;;
      *) COMPREPLY=() ;;
    esac
  fi
}
complete -F _daust daust
