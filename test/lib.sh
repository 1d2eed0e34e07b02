# Shared by the test runners. The trainer refuses a flag given twice, so a
# runner's defaults give way to the flags a case passes itself:
#   with_defaults DEFAULTS "$@"   sets ARGS to the flag-value pairs of the array
#                                 named DEFAULTS that "$@" does not give, then "$@"
with_defaults() {
    local -n defaults=$1
    shift
    ARGS=()
    local i
    for ((i = 0; i < ${#defaults[@]}; i += 2)); do
        case " $* " in
        *" ${defaults[i]} "* | *" ${defaults[i]}="*) ;;
        *) ARGS+=("${defaults[i]}" "${defaults[i + 1]}") ;;
        esac
    done
    ARGS+=("$@")
}
