# Used by check-docs.sh: lists what a Markdown page tells a reader to run
# or open, one record a line, "KIND<TAB>FILE:LINE<TAB>TEXT":
#   cmd   a command line: each line of a ```sh block (continuations joined),
#         a "$ " line of a ```text block, or an inline `code` span with
#         arguments whose first word is a path (`build/examples/echo_server
#         --listen ...`) or an example's bare name (`echo_server --quiet`)
#   path  any other repository path in an inline code span (`examples/cli.c`)
#   link  the target of a relative Markdown link ([text](production.md#x))
# check-docs.sh then checks each one against the repository and the build.

function emit(kind, text) {
    printf "%s\t%s:%d\t%s\n", kind, FILENAME, FNR, text
}

# A repository path: starts with one of the top-level directories.
function is_path(word) {
    return word ~ /^(\.\/)?(build|examples|scripts|docs|src|include|tests|bench|fuzz|tools|cmake)\//
}

function inline_spans(line,    span, words, n, i) {
    while (match(line, /`[^`]+`/)) {
        span = substr(line, RSTART + 1, RLENGTH - 2)
        line = substr(line, RSTART + RLENGTH)
        n = split(span, words, /[ \t]+/)
        if (n > 1 && (is_path(words[1]) || words[1] ~ /^(echo|uppercase|line|robust|chat)_(server|client)$/)) {
            emit("cmd", span)
            continue
        }
        for (i = 1; i <= n; i++)
            if (is_path(words[i]))
                emit("path", words[i])
    }
}

function links(line,    target) {
    while (match(line, /\]\([^)]+\)/)) {
        target = substr(line, RSTART + 2, RLENGTH - 3)
        line = substr(line, RSTART + RLENGTH)
        if (target !~ /^(https?:|mailto:|#)/)
            emit("link", target)
    }
}

/^```/ {
    if (fence == "") {
        fence = substr($0, 4)
        fence = fence == "" ? "plain" : fence
    } else {
        fence = ""
    }
    pending = ""
    next
}

fence == "sh" || fence == "bash" || fence == "shell" {
    line = $0
    if (line ~ /^[ \t]*(#|$)/)
        next
    if (line ~ /\\$/) { # continued on the next line
        pending = pending substr(line, 1, length(line) - 1) " "
        next
    }
    emit("cmd", pending line)
    pending = ""
    next
}

fence != "" {
    if ($0 ~ /^\$ /)
        emit("cmd", substr($0, 3))
    next
}

{
    inline_spans($0)
    links($0)
}
