/* vcache.c - verified results, remembered; see vcache.h. */
#include "vault/wallet/vcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    bool used;
    uint8_t id[WALLET_VCACHE_ID_LEN];
    int64_t from, until;
};

struct wallet_vcache {
    pthread_mutex_t lock;
    struct slot slots[WALLET_VCACHE_SLOTS];
    size_t next; /* round-robin replacement */
};

int
wallet_vcache_new(struct wallet_vcache **out)
{
    struct wallet_vcache *c = calloc(1, sizeof(*c));

    if (out == NULL || c == NULL) {
        free(c);
        return WALLET_ERR_NO_MEMORY;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return WALLET_ERR_NO_MEMORY;
    }
    *out = c;
    return WALLET_OK;
}

void
wallet_vcache_free(struct wallet_vcache *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

bool
wallet_vcache_hit(struct wallet_vcache *c, const uint8_t id[WALLET_VCACHE_ID_LEN], int64_t now)
{
    bool hit = false;

    if (c == NULL)
        return false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < WALLET_VCACHE_SLOTS && !hit; i++) {
        const struct slot *sl = &c->slots[i];

        hit = sl->used && memcmp(sl->id, id, WALLET_VCACHE_ID_LEN) == 0 && now >= sl->from &&
              now <= sl->until;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void
wallet_vcache_put(struct wallet_vcache *c, const uint8_t id[WALLET_VCACHE_ID_LEN], int64_t from,
                  int64_t until)
{
    struct slot *sl;

    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    sl = &c->slots[c->next];
    c->next = (c->next + 1) % WALLET_VCACHE_SLOTS;
    sl->used = true;
    memcpy(sl->id, id, WALLET_VCACHE_ID_LEN);
    sl->from = from;
    sl->until = until;
    pthread_mutex_unlock(&c->lock);
}
