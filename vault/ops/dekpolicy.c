/*
 * dekpolicy.c - automatic DEK rotation by encryption count and by age.
 */
#include <stdio.h>
#include <string.h>

#include "vault/log.h"
#include "vault/ops/ops.h"

void
ops_dek_sealed(struct vault_service *svc)
{
    atomic_fetch_add(&svc->dekpolicy.unsaved, 1);
}

void
ops_dekpolicy_configure(struct vault_service *svc, uint64_t max_encryptions, unsigned max_age_days)
{
    atomic_store(&svc->dekpolicy.max_encryptions, max_encryptions);
    atomic_store(&svc->dekpolicy.max_age_days, max_age_days);
}

static int
usage_apply(struct store_write *w, struct store_txn *t)
{
    struct dekpolicy *p = (struct dekpolicy *)w;
    uint64_t sealed = 0, created = 0, now = audit_now_ms();
    uint64_t max = atomic_load(&p->max_encryptions);
    unsigned days = atomic_load(&p->max_age_days);
    int r;

    r = keys_dek_usage_add(t, keys_dek_current(&p->svc->keys), p->delta, now, &sealed, &created);
    if (r != 0)
        return r;
    if (sealed >= max || (days > 0 && now > created && now - created >= (uint64_t)days * 86400000u))
        atomic_store(&p->due, true);
    return 0;
}

static void
usage_done(struct store_write *w, int result)
{
    struct dekpolicy *p = (struct dekpolicy *)w;

    if (result != 0) /* not saved: counted again at the next tick */
        atomic_fetch_add(&p->unsaved, p->delta);
    atomic_store(&p->busy, false);
}

static void
rotate_work(uv_work_t *w)
{
    struct vault_service *svc = w->data;
    char err[256];
    uint32_t version = 0, loaded = 0;
    struct vlog_line l;

    if (keys_dek_rotate(svc->hsm, svc->store, &svc->audit, "tokenvaultd", &version, err,
                        sizeof(err)) != 0 ||
        keys_refresh(&svc->keys, svc->hsm, svc->store, &loaded, err, sizeof(err)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "dek_rotate_failed", "reason", err);
        return;
    }
    if (vlog_begin(&l, VAULT_LOG_INFO, "dek_rotated")) {
        vlog_str(&l, "by", "policy");
        vlog_u64(&l, "dek_version", version);
        vlog_end(&l);
    }
}

static void
rotate_after(uv_work_t *w, int status)
{
    struct vault_service *svc = w->data;

    svc->dekpolicy.rotating = false;
}

void
ops_dekpolicy_tick(struct vault_service *svc)
{
    struct dekpolicy *p = &svc->dekpolicy;

    if (svc->sealed || svc->stopping)
        return;
    p->svc = svc;
    /* Due: rotate once (a worker); the new version's usage starts at zero. */
    if (atomic_load(&p->due) && !p->rotating && !atomic_load(&p->busy)) {
        atomic_store(&p->due, false);
        p->work.data = svc;
        p->rotating = uv_queue_work(svc->loop, &p->work, rotate_work, rotate_after) == 0;
        return;
    }
    if (p->rotating || atomic_exchange(&p->busy, true))
        return;
    p->delta = atomic_exchange(&p->unsaved, 0);
    p->w.apply = usage_apply;
    p->w.done = usage_done;
    if (store_write_submit(svc->store, &p->w) != 0) {
        atomic_fetch_add(&p->unsaved, p->delta);
        atomic_store(&p->busy, false);
    }
}
