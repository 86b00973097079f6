# SPDX-License-Identifier: GPL-2.0-or-later
# Shared by masqmail's ppp, NetworkManager and networkd-dispatcher hooks
# (sourced, POSIX sh; installed as /usr/share/masqmail/online-hook.sh). Trusts
# the defaults file and the mapping files (root-owned configuration, refused
# when group- or world-writable); the names that ppp's ipparam, NetworkManager
# connection ids and interface names give are untrusted text, checked by
# mm_valid_route before anything uses them. A hook never fails its link: every
# problem is logged and the hook exits 0.

# Every path below is under MASQMAIL_HOOK_ROOT, which is empty on a real host;
# the test suite points it at a private tree (see doc/packaging.md).
mm_root=${MASQMAIL_HOOK_ROOT-}
mm_tag=masqmail-hook
# Whatever the caller set: the online file's folder must be readable by
# route-selector's user, and the tools below must be found.
umask 022
: "${PATH:=/usr/sbin:/usr/bin:/sbin:/bin}"
export PATH

mm_log() {
    # syslog (mail facility) when there is one, and stderr, which pppd sends
    # to /dev/null and NetworkManager and networkd-dispatcher to the journal.
    logger -t "$mm_tag" -p mail.notice -- "$*" 2>/dev/null || :
    printf '%s: %s\n' "$mm_tag" "$*" >&2
}

# mm_unsafe_file FILE: true (and logged) when FILE is writable by group or
# others, or owned by someone other than root and the hook's own user, since
# what it says decides which program the hook runs as root.
mm_unsafe_file() {
    if [ -n "$(find "$1" -prune -perm /022 2>/dev/null)" ]; then
        mm_log "ignoring $1: it is writable by group or others"
        return 0
    fi
    if [ -n "$(find "$1" -prune ! -user 0 ! -user "$(id -u)" 2>/dev/null)" ]; then
        mm_log "ignoring $1: it is owned by another user"
        return 0
    fi
    return 1
}

# mm_read_defaults: the settings of /etc/default/masqmail as MM_* variables.
# The file is read line by line as KEY=VALUE (optionally quoted), never
# sourced or expanded; unknown keys are ignored, so the file can be shared.
mm_read_defaults() {
    MM_HOOKS=yes
    MM_MASQMAIL=$mm_root/usr/sbin/masqmail
    MM_CONF=
    MM_ONLINE_FILE=$mm_root/run/masqmail/online
    MM_FLUSH=background
    MM_NM_ROUTES=$mm_root/etc/masqmail/nm-routes
    MM_NETWORKD_ROUTES=$mm_root/etc/masqmail/networkd-routes
    mm_file=$mm_root/etc/default/masqmail
    [ -r "$mm_file" ] || return 0
    mm_unsafe_file "$mm_file" && return 0
    while IFS= read -r mm_line || [ -n "$mm_line" ]; do
        mm_line=${mm_line#"${mm_line%%[![:space:]]*}"}
        case $mm_line in '' | '#'*) continue ;; esac
        mm_key=${mm_line%%=*}
        [ "$mm_key" = "$mm_line" ] && continue
        mm_value=${mm_line#*=}
        mm_value=${mm_value%"${mm_value##*[![:space:]]}"}
        case $mm_value in
            \"*\") mm_value=${mm_value#\"}; mm_value=${mm_value%\"} ;;
            \'*\') mm_value=${mm_value#\'}; mm_value=${mm_value%\'} ;;
        esac
        # shellcheck disable=SC2034 # the NM and networkd hooks use them
        case $mm_key in
            MASQMAIL_HOOKS) MM_HOOKS=$mm_value ;;
            MASQMAIL) MM_MASQMAIL=$mm_value ;;
            MASQMAIL_CONF) MM_CONF=$mm_value ;;
            ONLINE_FILE) MM_ONLINE_FILE=$mm_value ;;
            FLUSH) MM_FLUSH=$mm_value ;;
            NM_ROUTES) MM_NM_ROUTES=$mm_value ;;
            NETWORKD_ROUTES) MM_NETWORKD_ROUTES=$mm_value ;;
        esac
    done <"$mm_file"
}

# mm_valid_route NAME: NAME may name a route: letters, digits, "_", "." and
# "-", not starting with "-" or ".", at most 64 characters. Logs a refusal.
mm_valid_route() {
    case $1 in
        '' | -* | .* | *[!A-Za-z0-9_.-]*)
            mm_log "ignoring route name '$(printf '%s' "$1" | tr -c 'A-Za-z0-9_.-' '?')': only letters, digits, _ . - are allowed"
            return 1 ;;
    esac
    if [ "${#1}" -gt 64 ]; then
        mm_log "ignoring a route name of ${#1} characters"
        return 1
    fi
    return 0
}

# mm_map_name FILE KEY: the route FILE maps KEY to ("KEY ROUTE" lines: the
# last word is the route, everything before it the key, so connection ids
# may contain blanks). Without an entry, KEY itself when the masqmail
# configuration defines query_routes.KEY. Prints nothing otherwise.
mm_map_name() {
    if [ -r "$1" ] && ! mm_unsafe_file "$1"; then
        while IFS= read -r mm_line || [ -n "$mm_line" ]; do
            mm_line=${mm_line#"${mm_line%%[![:space:]]*}"}
            mm_line=${mm_line%"${mm_line##*[![:space:]]}"}
            case $mm_line in '' | '#'*) continue ;; esac
            mm_route=${mm_line##*[[:space:]]}
            mm_key=${mm_line%"$mm_route"}
            mm_key=${mm_key%"${mm_key##*[![:space:]]}"}
            if [ -n "$mm_key" ] && [ "$mm_key" = "$2" ]; then
                printf '%s\n' "$mm_route"
                return 0
            fi
        done <"$1"
    fi
    if mm_config_defines "$2"; then
        printf '%s\n' "$2"
    fi
}

# mm_config_defines NAME: the masqmail configuration has a route list NAME
# (query_routes.NAME, or 0.3's connect_route.NAME and online_routes.NAME).
mm_config_defines() {
    mm_cf=${MM_CONF:-$mm_root/etc/masqmail/masqmail.conf}
    [ -r "$mm_cf" ] || return 1
    while IFS= read -r mm_line || [ -n "$mm_line" ]; do
        mm_line=${mm_line#"${mm_line%%[![:space:]]*}"}
        for mm_prefix in query_routes connect_route online_routes; do
            case $mm_line in
                "$mm_prefix.$1"=* | "$mm_prefix.$1"[[:space:]]*) return 0 ;;
            esac
        done
    done <"$mm_cf"
    return 1
}

# mm_locked COMMAND...: runs COMMAND holding the online file's lock, so that
# one link's down and another's up never interleave. flock(1) is in
# util-linux; without it (or after 10 s) the command runs unlocked.
mm_locked() {
    mm_dir=${MM_ONLINE_FILE%/*}
    [ -n "$mm_dir" ] || mm_dir=/
    if ! mkdir -p "$mm_dir" 2>/dev/null; then
        mm_log "cannot create $mm_dir"
        return 1
    fi
    # "command exec": a failed redirection must not end the hook (POSIX).
    if command -v flock >/dev/null 2>&1 && [ -w "$mm_dir" ] &&
        { command exec 9>>"$mm_dir/.online.lock"; } 2>/dev/null; then
        flock -w 10 9 || mm_log "$mm_dir/.online.lock: still locked after 10 s; going on"
        "$@"
        mm_status=$?
        exec 9>&-
        return $mm_status
    fi
    "$@"
}

mm_write_online() {
    mm_tmp=$(mktemp "${MM_ONLINE_FILE%/*}/.online.XXXXXX") || {
        mm_log "cannot create a file beside $MM_ONLINE_FILE"
        return 1
    }
    if printf '%s\n' "$1" >"$mm_tmp" && chmod 0644 "$mm_tmp" && mv -f "$mm_tmp" "$MM_ONLINE_FILE"; then
        return 0
    fi
    rm -f "$mm_tmp"
    mm_log "cannot write $MM_ONLINE_FILE"
    return 1
}

mm_remove_online() {
    mm_current=
    [ -r "$MM_ONLINE_FILE" ] && IFS= read -r mm_current <"$MM_ONLINE_FILE"
    if [ "$mm_current" = "$1" ]; then
        rm -f "$MM_ONLINE_FILE"
    else
        mm_log "$1 went down; leaving $MM_ONLINE_FILE (${mm_current:-empty})"
    fi
}

# mm_flush ROUTE: masqmail -qo ROUTE, detached (the default: ppp and
# NetworkManager wait for their hooks, and NetworkManager kills one after
# 90 s), in the foreground with FLUSH=foreground, not at all with FLUSH=no.
mm_flush() {
    set -- "$MM_MASQMAIL" ${MM_CONF:+-C "$MM_CONF"} -qo "$1"
    case $MM_FLUSH in
        no) return 0 ;;
        foreground)
            "$@" </dev/null || mm_log "$* exited $?" ;;
        *)
            if command -v setsid >/dev/null 2>&1; then
                setsid "$@" </dev/null >/dev/null 2>&1 &
            else
                "$@" </dev/null >/dev/null 2>&1 &
            fi ;;
    esac
    return 0
}

# mm_online_up ROUTE: records ROUTE as the connection that is up and
# flushes its mail.
mm_online_up() {
    mm_valid_route "$1" || return 0
    mm_locked mm_write_online "$1" || return 0
    mm_log "$1 is up: flushing its mail"
    mm_flush "$1"
}

# mm_online_down ROUTE: forgets ROUTE's record, if the record names ROUTE.
mm_online_down() {
    mm_valid_route "$1" || return 0
    mm_locked mm_remove_online "$1"
    return 0
}

# mm_online_route: the route the online file names, if it is a valid name.
mm_online_route() {
    mm_current=
    [ -r "$MM_ONLINE_FILE" ] && IFS= read -r mm_current <"$MM_ONLINE_FILE"
    case $mm_current in
        '' | -* | .* | *[!A-Za-z0-9_.-]*) ;;
        *) printf '%s\n' "$mm_current" ;;
    esac
}

# mm_start: reads the defaults; exits 0 when the hooks are switched off.
mm_start() {
    mm_read_defaults
    case $MM_HOOKS in
        no | false | 0) exit 0 ;;
    esac
}
