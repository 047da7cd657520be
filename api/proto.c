/* proto.c - names and tag table of the RPC; see proto.h. */
#include <stdio.h>
#include <string.h>

#include "api/proto.h"

/* ---- statuses ----------------------------------------------------------- */

struct status_info {
    unsigned num;
    const char *name;
    const char *description;
    enum api_status_class cls;
};

static const struct status_info statuses[] = {
#define STATUS_ROW(name, num, cls, desc) {num, #name, desc, API_CLASS_##cls},
    API_STATUS_LIST(STATUS_ROW)
#undef STATUS_ROW
};

static const struct status_info *
status_find(unsigned num)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (statuses[i].num == num)
            return &statuses[i];
    return NULL;
}

const char *
api_status_name(unsigned status)
{
    const struct status_info *s = status_find(status);

    return s != NULL ? s->name : NULL;
}

const char *
api_status_description(unsigned status)
{
    const struct status_info *s = status_find(status);

    return s != NULL ? s->description : NULL;
}

enum api_status_class
api_status_class(unsigned status)
{
    const struct status_info *s = status_find(status);

    return s != NULL ? s->cls : API_CLASS_INTERNAL;
}

int
api_status_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(statuses[i].name, name) == 0)
            return (int)statuses[i].num;
    return -1;
}

const char *
api_strerror(int r)
{
    const char *name;

    switch (r) {
    case API_ERR_NO_MEMORY: return "API_ERR_NO_MEMORY";
    case API_ERR_INVALID_ARG: return "API_ERR_INVALID_ARG";
    case API_ERR_CONNECT: return "API_ERR_CONNECT";
    case API_ERR_TLS: return "API_ERR_TLS";
    case API_ERR_TIMEOUT: return "API_ERR_TIMEOUT";
    case API_ERR_CONNECTION: return "API_ERR_CONNECTION";
    case API_ERR_PROTOCOL: return "API_ERR_PROTOCOL";
    case API_ERR_BUSY: return "API_ERR_BUSY";
    case API_ERR_CONFIG: return "API_ERR_CONFIG";
    default: break;
    }
    name = r <= 0 && r > -65536 ? api_status_name((unsigned)-r) : NULL;
    return name != NULL ? name : "API_ERR_UNKNOWN";
}

/* ---- roles, types --------------------------------------------------------- */

static const char *const role_names[] = {
#define ROLE_NAME(name, str) str,
    API_ROLE_LIST(ROLE_NAME)
#undef ROLE_NAME
};

const char *
api_role_name(enum api_role role)
{
    return (unsigned)role < API_ROLE_COUNT_ ? role_names[role] : NULL;
}

int
api_role_from_name(const char *name)
{
    for (int i = 0; i < (int)API_ROLE_COUNT_; i++)
        if (strcmp(role_names[i], name) == 0)
            return i;
    return -1;
}

static const char *const type_names[] = {
#define TYPE_NAME(name, str) str,
    API_TYPE_LIST(TYPE_NAME)
#undef TYPE_NAME
};

const char *
api_type_name(enum api_type type)
{
    return (unsigned)type < sizeof(type_names) / sizeof(type_names[0]) ? type_names[type] : "?";
}

/* ---- tags ------------------------------------------------------------------ */

/* Names of each enumeration, indexed by value; [0] stays NULL ("unset"). */
#define ENUM_NAME_AT(name, num, str) [num] = str,
#define ENUM_NAMES(list) \
    static const char *const list##_names[] = {NULL, API_##list##_LIST(ENUM_NAME_AT)};
ENUM_NAMES(VERIFICATION)
ENUM_NAMES(BRAND)
ENUM_NAMES(CARD_KIND)
ENUM_NAMES(DEDUP)
ENUM_NAMES(PURPOSE)
ENUM_NAMES(WALLET)
ENUM_NAMES(AUTH_METHOD)
ENUM_NAMES(MANDATE_KIND)
ENUM_NAMES(MANDATE_STATUS)
ENUM_NAMES(CANCELLED_BY)
ENUM_NAMES(QR_STATE)
ENUM_NAMES(KEY_STATE)
ENUM_NAMES(KEY_CLASS)
ENUM_NAMES(KDF_PATH)
#define NONE_names NULL

/* In number order (tests check it), so lookup is a binary search. */
static const struct api_tag_info tags[] = {
#define TAG_ROW(name, num, type, min, max, flags, enums, wire) \
    {num, API_T_##type, flags, min, max, #name, wire, enums##_names},
    API_TAG_LIST(TAG_ROW)
#undef TAG_ROW
};

const struct api_tag_info *
api_tag_info(uint16_t tag)
{
    size_t lo = 0, hi = sizeof(tags) / sizeof(tags[0]);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (tags[mid].tag == tag)
            return &tags[mid];
        if (tags[mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct api_tag_info *
api_tag_all(size_t *out_num)
{
    *out_num = sizeof(tags) / sizeof(tags[0]);
    return tags;
}

const char *
api_enum_name(uint16_t tag, unsigned value)
{
    const struct api_tag_info *info = api_tag_info(tag);

    if (info == NULL || info->type != API_T_ENUM || value < 1 || value > info->max)
        return NULL;
    return info->enum_names[value];
}

int
api_enum_from_name(uint16_t tag, const char *name)
{
    const struct api_tag_info *info = api_tag_info(tag);

    if (info == NULL || info->type != API_T_ENUM)
        return -1;
    for (unsigned v = 1; v <= info->max; v++)
        if (strcmp(info->enum_names[v], name) == 0)
            return (int)v;
    return -1;
}

static const struct api_op_info ops[] = {
#define API__OP_INFO(name, num, area, verb, role, lower, summary) \
    {num, #name, #lower, API_ROLE_##role},
    API_OP_LIST(API__OP_INFO)
#undef API__OP_INFO
};

const struct api_op_info *
api_op_info(uint16_t opcode)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (ops[i].opcode == opcode)
            return &ops[i];
    return NULL;
}
