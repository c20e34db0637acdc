/* cf_test.h - a tiny unit test harness: CHECK macros, a per-file runner and
 * the closing line "N passed, N failed". */
#ifndef CF_TEST_H
#define CF_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cf_test_failed_checks;

/* A fixture file's bytes (NUL-terminated, n without it); p NULL when it
 * cannot be read, said on stderr.  Free p. */
typedef struct { char *p; size_t n; } blob;

static inline blob cf_test_load(const char *dir, const char *name)
{
    char path[512];
    blob b = { 0 };
    FILE *f;
    long n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(f = fopen(path, "rb"))) {
        fprintf(stderr, "  cannot open fixture %s\n", path);
        return b;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.p = malloc((size_t)n + 1);
    if (b.p && fread(b.p, 1, (size_t)n, f) == (size_t)n) {
        b.n = (size_t)n;
        b.p[n] = '\0';
    }
    fclose(f);
    return b;
}

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
    cf_test_failed_checks++; } } while (0)
#define CHECK_EQ_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
    if (_a != _b) { fprintf(stderr, "  %s:%d: %s == %lld, expected %lld\n", \
    __FILE__, __LINE__, #a, _a, _b); cf_test_failed_checks++; } } while (0)
#define CHECK_EQ_STR(a, b) do { const char *_a = (a), *_b = (b); \
    if (!_a || !_b || strcmp(_a, _b)) { fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n", \
    __FILE__, __LINE__, #a, _a ? _a : "(null)", _b ? _b : "(null)"); cf_test_failed_checks++; } } while (0)

typedef struct { const char *name; void (*fn)(void); } cf_test_case;

/* Run every case; print one line per case and the closing count line. */
static inline int cf_test_run(const char *suite, const cf_test_case *cases, int n)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        int before = cf_test_failed_checks;
        cases[i].fn();
        if (cf_test_failed_checks == before) {
            passed++;
            printf("ok   %s.%s\n", suite, cases[i].name);
        } else {
            failed++;
            printf("FAIL %s.%s\n", suite, cases[i].name);
        }
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed ? 1 : 0;
}

#define CF_TEST_MAIN(suite, ...) \
    int main(void) { static const cf_test_case cases[] = { __VA_ARGS__ }; \
        return cf_test_run(suite, cases, (int)(sizeof cases / sizeof *cases)); }
#define T(fn) { #fn, fn }

#endif
