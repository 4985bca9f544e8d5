# Used by check-docs.sh: copies one Markdown file to stdout, checking (or,
# with update=1, replacing) each ```c block against the source region its
# snippet marker names. Exits 1 after reporting every problem on stderr.

function fail(msg) {
    printf "%s:%d: %s\n", md, FNR, msg > "/dev/stderr"
    bad = 1
}

# The lines between "/* docs:begin NAME */" and "/* docs:end NAME */" in
# path, without any marker lines; "" and found = 0 if there is no region.
function region(path, name,    line, inside, text, begin, end) {
    begin = "/* docs:begin " name " */"
    end = "/* docs:end " name " */"
    inside = 0
    found = 0
    text = ""
    while ((getline line < path) > 0) {
        if (index(line, end)) {
            inside = 0
        } else if (index(line, begin)) {
            inside = 1
            found = 1
        } else if (inside && !index(line, "/* docs:begin ") && !index(line, "/* docs:end ")) {
            text = text line "\n"
        }
    }
    close(path)
    return text
}

BEGIN { bad = 0; want_block = 0; in_block = 0 }

in_block {
    if ($0 == "```") {
        if (marked && block != wanted && !update)
            fail("block differs from " path " region '" name "' (run scripts/check-docs.sh --update)")
        printf "%s", (update && marked ? wanted : block)
        print
        in_block = 0
    } else {
        block = block $0 "\n"
    }
    next
}

/^<!-- snippet: [^ ]+ [^ ]+ -->$/ {
    path = $3
    name = $4
    wanted = region(path, name)
    if (!found)
        fail("no region '" name "' in " path)
    want_block = 1
    print
    next
}

$0 == "```c" {
    if (!want_block)
        fail("C block without a <!-- snippet: PATH NAME --> line before it")
    marked = want_block
    want_block = 0
    in_block = 1
    block = ""
    print
    next
}

{
    if (want_block)
        fail("snippet marker not followed by a ```c block")
    want_block = 0
    print
}

END {
    if (in_block)
        fail("unterminated C block")
    exit bad
}
