/* The library's own error codes (socketserver/base.h): each one distinct,
 * above the errno range, with a description of its own. Codes added by
 * separate pieces of work (the listeners', the hand-over's, TLS's) must
 * not take the same numbers: a caller testing for one would catch the
 * other, and ss_strerror would describe only one of them. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define CODE(name)                                                                                 \
    {                                                                                              \
        name, #name                                                                                \
    }

static const struct {
    int code;
    const char *name;
} codes[] = {
    CODE(SS_EBADURL),        CODE(SS_ENOTSUPPORTED), CODE(SS_ESTATE),
    CODE(SS_ERESOLVE),       CODE(SS_ETRUNCATED),    CODE(SS_EUNNAMEDPEER),
    CODE(SS_ELINETOOLONG),   CODE(SS_EINCOMPLETE),   CODE(SS_EFINALFLUSH),
    CODE(SS_EURLNOSCHEME),   CODE(SS_EURLSCHEME),    CODE(SS_EURLNOPORT),
    CODE(SS_EURLPORTSYNTAX), CODE(SS_EURLPORTRANGE), CODE(SS_EURLBRACKET),
    CODE(SS_EURLIPV6BARE),   CODE(SS_EURLHOST),      CODE(SS_EURLNOPATH),
    CODE(SS_EURLFD),         CODE(SS_EPROXY),        CODE(SS_EPROXYUNTRUSTED),
    CODE(SS_ESUCCESSOR),     CODE(SS_ENOTLISTENING), CODE(SS_ENOACTIVATION),
    CODE(SS_ENOFDNAME),      CODE(SS_ELISTENPID),    CODE(SS_ELISTENENV),
    CODE(SS_ELISTENFDS),     CODE(SS_ETLS),          CODE(SS_ETLSCERT),
    CODE(SS_ETLSNOCERT),
};
#define NCODES (sizeof codes / sizeof codes[0])

static void codes_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        assert_true(codes[i].code < -SS_ERRBASE); /* never an errno */
        for (size_t j = i + 1; j < NCODES; j++)
            if (codes[i].code == codes[j].code)
                fail_msg("%s and %s are both %d", codes[i].name, codes[j].name, codes[i].code);
    }
}

static void each_has_its_own_description(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        const char *text = ss_strerror(codes[i].code);
        if (strcmp(text, "Unknown error") == 0)
            fail_msg("%s has no description", codes[i].name);
        for (size_t j = i + 1; j < NCODES; j++)
            if (strcmp(text, ss_strerror(codes[j].code)) == 0)
                fail_msg("%s and %s read the same: %s", codes[i].name, codes[j].name, text);
    }
    /* the URL errors are those SS_IS_URL_ERROR says, and only those */
    for (size_t i = 0; i < NCODES; i++)
        assert_int_equal(SS_IS_URL_ERROR(codes[i].code),
                         strncmp(codes[i].name, "SS_EURL", 7) == 0 || codes[i].code == SS_EBADURL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codes_are_distinct),
        cmocka_unit_test(each_has_its_own_description),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
