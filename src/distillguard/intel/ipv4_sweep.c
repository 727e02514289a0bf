/* The attacker's sweep over IPv4 space, for distillguard.intel.sweep (see there for why).
 *
 * For every address a.b.c.d in [start, start + count) it hashes the dotted string, and the
 * exact message distillguard's keyed hash reads ("ipv4-addr\0a.b.c.d"), with unkeyed
 * SHA-256, SHA-1, MD5 and HMAC-SHA-256 under an empty key (mode "attack"), or with
 * HMAC-SHA-256 under the given epoch key (mode "key", what a partner holding the key does),
 * and reports every address whose digest equals one of the targets (32-byte digests read
 * from a file). OpenSSL's low-level digests (libcrypto, SHA extensions where the CPU has
 * them) are declared here so that only the runtime library is needed, not its headers.
 *
 * usage: ipv4_sweep attack|key START COUNT TARGETS_FILE [KEY_HEX]
 * output: "hit ALGO A.B.C.D" per match, then "hashed N messages in S s".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int SHA256_Init(void *c);
int SHA256_Update(void *c, const void *d, size_t n);
int SHA256_Final(unsigned char *md, void *c);
int SHA1_Init(void *c);
int SHA1_Update(void *c, const void *d, size_t n);
int SHA1_Final(unsigned char *md, void *c);
int MD5_Init(void *c);
int MD5_Update(void *c, const void *d, size_t n);
int MD5_Final(unsigned char *md, void *c);

typedef struct { _Alignas(16) unsigned char b[256]; } Ctx; /* larger than any OpenSSL CTX */

static uint64_t *targets; /* first 8 bytes of each target digest, sorted */
static unsigned char *target_full;
static size_t n_targets;
static uint8_t *filter; /* 2^24-bit filter on the top 24 bits */

static uint64_t head64(const unsigned char *d) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | d[i];
    return v;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether digest d (len bytes) equals a target on its length (a digest shorter than 32
 * bytes can only equal a target's prefix: counted, so a truncated export is covered too). */
static int is_target(const unsigned char *d, size_t len) {
    uint64_t h = head64(d);
    if (!(filter[h >> 43] & (1u << ((h >> 40) & 7)))) return 0;
    size_t lo = 0, hi = n_targets;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (targets[mid] < h) lo = mid + 1; else hi = mid;
    }
    for (; lo < n_targets && targets[lo] == h; lo++) {
        for (size_t t = 0; t < n_targets; t++)
            if (memcmp(target_full + 32 * t, d, len) == 0) return 1;
    }
    return 0;
}

static Ctx ipad_ctx, opad_ctx; /* HMAC-SHA-256 midstates for the key */

static void hmac_init(const unsigned char *key, size_t klen) {
    unsigned char k[64] = {0}, pad[64];
    if (klen > 64) { Ctx c; SHA256_Init(&c); SHA256_Update(&c, key, klen); SHA256_Final(k, &c); }
    else memcpy(k, key, klen);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    SHA256_Init(&ipad_ctx); SHA256_Update(&ipad_ctx, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&opad_ctx); SHA256_Update(&opad_ctx, pad, 64);
}

static void hmac(const unsigned char *m, size_t n, unsigned char *out) {
    Ctx c; unsigned char inner[32];
    memcpy(&c, &ipad_ctx, sizeof c); SHA256_Update(&c, m, n); SHA256_Final(inner, &c);
    memcpy(&c, &opad_ctx, sizeof c); SHA256_Update(&c, inner, 32); SHA256_Final(out, &c);
}

static char octets[256][4];
static int octet_len[256];

/* a.b.c.d without printf (a third of the time per address went to sprintf) */
static int dotted(char *out, uint32_t a) {
    int n = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        int o = (a >> shift) & 255;
        memcpy(out + n, octets[o], 4);
        n += octet_len[o];
        if (shift) out[n++] = '.';
    }
    return n;
}

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s attack|key START COUNT TARGETS [KEY_HEX]\n", argv[0]); return 2; }
    int keyed = strcmp(argv[1], "key") == 0;
    uint64_t start = strtoull(argv[2], 0, 10), count = strtoull(argv[3], 0, 10);
    FILE *f = fopen(argv[4], "rb");
    if (!f) { perror(argv[4]); return 2; }
    fseek(f, 0, SEEK_END); long size = ftell(f); fseek(f, 0, SEEK_SET);
    n_targets = (size_t)size / 32;
    target_full = malloc(n_targets * 32 + 1);
    if (fread(target_full, 32, n_targets, f) != n_targets) { fprintf(stderr, "short read\n"); return 2; }
    fclose(f);
    targets = malloc((n_targets + 1) * 8);
    filter = calloc(1 << 21, 1);
    for (size_t t = 0; t < n_targets; t++) {
        uint64_t h = head64(target_full + 32 * t);
        targets[t] = h;
        filter[h >> 43] |= (uint8_t)(1u << ((h >> 40) & 7));
    }
    qsort(targets, n_targets, 8, cmp_u64);
    unsigned char key[64]; size_t klen = 0;
    if (keyed) {
        if (argc < 6) { fprintf(stderr, "key mode needs KEY_HEX\n"); return 2; }
        for (const char *p = argv[5]; p[0] && p[1] && klen < 64; p += 2) key[klen++] = (unsigned char)(hexval(p[0]) << 4 | hexval(p[1]));
    }
    hmac_init(key, klen); /* empty key in attack mode */
    for (int o = 0; o < 256; o++) octet_len[o] = snprintf(octets[o], 4, "%d", o);
    static const char prefix[] = "ipv4-addr"; /* + '\0' + address: the keyed hash's message */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t hashed = 0;
#pragma omp parallel for schedule(static, 65536) reduction(+ : hashed)
    for (uint64_t i = 0; i < count; i++) {
        uint32_t a = (uint32_t)(start + i);
        unsigned char msg[32]; size_t pl = sizeof prefix; /* includes the NUL */
        memcpy(msg, prefix, pl);
        int n = dotted((char *)msg + pl, a);
        unsigned char d[32]; Ctx c;
        const char *hit = 0;
        if (keyed) {
            hmac(msg, pl + n, d); hashed += 1;
            if (is_target(d, 32)) hit = "hmac-sha256-key";
        } else {
            for (int form = 0; form < 2 && !hit; form++) {
                const unsigned char *m = form ? msg : msg + pl; size_t len = form ? pl + n : (size_t)n;
                SHA256_Init(&c); SHA256_Update(&c, m, len); SHA256_Final(d, &c);
                if (is_target(d, 32)) hit = form ? "sha256-framed" : "sha256";
                SHA1_Init(&c); SHA1_Update(&c, m, len); SHA1_Final(d, &c);
                if (!hit && is_target(d, 20)) hit = form ? "sha1-framed" : "sha1";
                MD5_Init(&c); MD5_Update(&c, m, len); MD5_Final(d, &c);
                if (!hit && is_target(d, 16)) hit = form ? "md5-framed" : "md5";
                hmac(m, len, d);
                if (!hit && is_target(d, 32)) hit = form ? "hmac-empty-framed" : "hmac-empty";
                hashed += 4;
            }
        }
        if (hit) {
#pragma omp critical
            printf("hit %s %u.%u.%u.%u\n", hit, a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("hashed %llu messages in %.3f s\n", (unsigned long long)hashed,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
