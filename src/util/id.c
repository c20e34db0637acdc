/* id.c - random UUIDs and the wall clock in milliseconds. */
#include "util/id.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int64_t cf_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cf_random_bytes(void *p, size_t n)
{
    uint8_t *b = p;
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < n) {
        /* Only uniqueness matters to the callers, not secrecy. */
        static uint64_t ctr;
        uint64_t x = (uint64_t)cf_now_ms() ^ ((uint64_t)getpid() << 40) ^ ++ctr;
        for (; got < n; got++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            b[got] = (uint8_t)(x >> 56);
        }
    }
}

void cf_uuid(char out[37])
{
    uint8_t b[16];

    cf_random_bytes(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}
