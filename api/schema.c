/*
 * schema.c - the field list of every message struct in msg.h.
 *
 * One line per field: the tag, required or optional, and the struct member.
 * The member's offset and size come from the compiler, and tests/api/
 * test_schema.c checks every member's size against its tag's type and limit,
 * so a struct and its schema cannot drift apart.
 */
#include <stddef.h>

#include "api/msg.h"

#define MEMBER_SIZE(S, m) sizeof(((struct S *)0)->m)
/* A list member points to its items, so its size is a pointer's, which is
 * what test_schema.c checks it against. */
#define LIST_MEMBER_SIZE(S, m) sizeof(((struct S *)0)->m) /* NOLINT(bugprone-sizeof-expression) */
#define REQ(S, m, TAG) \
    {API_TAG_##TAG, API_FIELD_REQUIRED, offsetof(struct S, m), MEMBER_SIZE(S, m), 0, NULL}
#define OPT(S, m, TAG)                                                                  \
    {API_TAG_##TAG, API_FIELD_OPTIONAL, offsetof(struct S, m), MEMBER_SIZE(S, m),       \
     offsetof(struct S, has_##m), NULL}
#define LIST(S, m, TAG, ITEM)                                                           \
    {API_TAG_##TAG, API_FIELD_REQUIRED, offsetof(struct S, m), LIST_MEMBER_SIZE(S, m),  \
     offsetof(struct S, num_##m), &schema_##ITEM}
/* An optional list: present when it has items; `aux` is its count too. */
#define OLIST(S, m, TAG, ITEM)                                                          \
    {API_TAG_##TAG, API_FIELD_OPTIONAL, offsetof(struct S, m), LIST_MEMBER_SIZE(S, m),  \
     offsetof(struct S, num_##m), &schema_##ITEM}
#define SCHEMA(S, ...)                                                                  \
    static const struct api_field S##_fields[] = {__VA_ARGS__};                         \
    static const struct api_schema schema_##S = {#S, sizeof(struct S), S##_fields,     \
                                                 sizeof(S##_fields) / sizeof(S##_fields[0])};

static const struct api_schema schema_api_empty = {"api_empty", sizeof(struct api_empty), NULL, 0};

SCHEMA(api_ping_req, OPT(api_ping_req, echo, ECHO))
SCHEMA(api_ping_resp,
       OPT(api_ping_resp, echo, ECHO),
       REQ(api_ping_resp, server_time, SERVER_TIME))
SCHEMA(api_status_resp,
       REQ(api_status_resp, sealed, SEALED),
       REQ(api_status_resp, shares_received, SHARES_RECEIVED),
       REQ(api_status_resp, shares_needed, SHARES_NEEDED),
       REQ(api_status_resp, hsm_ready, HSM_READY),
       REQ(api_status_resp, version, VERSION_TEXT),
       REQ(api_status_resp, uptime, UPTIME),
       OPT(api_status_resp, appliance_id, APPLIANCE_ID),
       OPT(api_status_resp, record_count, RECORD_COUNT),
       OPT(api_status_resp, store_used, STORE_USED),
       OPT(api_status_resp, store_size, STORE_SIZE),
       OPT(api_status_resp, dek_version, KEY_VERSION),
       OPT(api_status_resp, reencrypt_pending, REENCRYPT_PENDING),
       OPT(api_status_resp, reencrypted, REENCRYPTED),
       OPT(api_status_resp, reencrypt_remaining, REENCRYPT_REMAINING),
       OPT(api_status_resp, reencrypt_total, REENCRYPT_TOTAL),
       OPT(api_status_resp, apple_kdf_path, APPLE_KDF_PATH),
       OPT(api_status_resp, google_kdf_path, GOOGLE_KDF_PATH),
       OPT(api_status_resp, oaep256_path, OAEP256_PATH))

SCHEMA(api_card_store_req,
       REQ(api_card_store_req, merchant, MERCHANT),
       REQ(api_card_store_req, customer_number, CUSTOMER_NUMBER),
       REQ(api_card_store_req, pan, PAN),
       REQ(api_card_store_req, exp_month, EXP_MONTH),
       REQ(api_card_store_req, exp_year, EXP_YEAR),
       OPT(api_card_store_req, holder, HOLDER),
       OPT(api_card_store_req, email, EMAIL),
       REQ(api_card_store_req, consent, CONSENT),
       REQ(api_card_store_req, verification, VERIFICATION),
       OPT(api_card_store_req, need_cvc, NEED_CVC),
       OPT(api_card_store_req, initial_txn_id, INITIAL_TXN_ID))
SCHEMA(api_card_store_resp,
       REQ(api_card_store_resp, token, TOKEN),
       REQ(api_card_store_resp, kind, CARD_KIND),
       REQ(api_card_store_resp, bin, BIN),
       REQ(api_card_store_resp, last4, LAST4),
       REQ(api_card_store_resp, brand, BRAND),
       REQ(api_card_store_resp, exp_month, EXP_MONTH),
       REQ(api_card_store_resp, exp_year, EXP_YEAR),
       REQ(api_card_store_resp, need_cvc, NEED_CVC),
       REQ(api_card_store_resp, active, ACTIVE),
       REQ(api_card_store_resp, dedup, DEDUP),
       REQ(api_card_store_resp, created_at, CREATED_AT))
SCHEMA(api_card_ref,
       REQ(api_card_ref, merchant, MERCHANT),
       REQ(api_card_ref, token, TOKEN))
SCHEMA(api_card_mapping_item,
       REQ(api_card_mapping_item, client_card_id, CLIENT_CARD_ID),
       REQ(api_card_mapping_item, email_bound, EMAIL_BOUND))
SCHEMA(api_card_info,
       REQ(api_card_info, token, TOKEN),
       REQ(api_card_info, kind, CARD_KIND),
       REQ(api_card_info, bin, BIN),
       REQ(api_card_info, last4, LAST4),
       REQ(api_card_info, brand, BRAND),
       REQ(api_card_info, exp_month, EXP_MONTH),
       REQ(api_card_info, exp_year, EXP_YEAR),
       REQ(api_card_info, active, ACTIVE),
       REQ(api_card_info, need_cvc, NEED_CVC),
       REQ(api_card_info, consent, CONSENT),
       REQ(api_card_info, verification, VERIFICATION),
       OPT(api_card_info, initial_txn_id, INITIAL_TXN_ID),
       REQ(api_card_info, created_at, CREATED_AT),
       OPT(api_card_info, expires_at, EXPIRES_AT),
       OLIST(api_card_info, mappings, MAPPINGS, api_card_mapping_item))
SCHEMA(api_customer_ref,
       REQ(api_customer_ref, merchant, MERCHANT),
       REQ(api_customer_ref, customer_number, CUSTOMER_NUMBER))
SCHEMA(api_card_item,
       REQ(api_card_item, token, TOKEN),
       REQ(api_card_item, bin, BIN),
       REQ(api_card_item, last4, LAST4),
       REQ(api_card_item, brand, BRAND),
       REQ(api_card_item, exp_month, EXP_MONTH),
       REQ(api_card_item, exp_year, EXP_YEAR),
       REQ(api_card_item, active, ACTIVE),
       REQ(api_card_item, need_cvc, NEED_CVC))
SCHEMA(api_card_list_resp, LIST(api_card_list_resp, cards, CARDS, api_card_item))
SCHEMA(api_card_update_req,
       REQ(api_card_update_req, merchant, MERCHANT),
       REQ(api_card_update_req, token, TOKEN),
       OPT(api_card_update_req, exp_month, EXP_MONTH),
       OPT(api_card_update_req, exp_year, EXP_YEAR),
       OPT(api_card_update_req, active, ACTIVE),
       OPT(api_card_update_req, need_cvc, NEED_CVC),
       OPT(api_card_update_req, holder, HOLDER),
       OPT(api_card_update_req, initial_txn_id, INITIAL_TXN_ID))
SCHEMA(api_card_reveal_req,
       REQ(api_card_reveal_req, merchant, MERCHANT),
       REQ(api_card_reveal_req, token, TOKEN),
       REQ(api_card_reveal_req, purpose, PURPOSE))
SCHEMA(api_card_reveal_resp,
       REQ(api_card_reveal_resp, kind, CARD_KIND),
       REQ(api_card_reveal_resp, pan, PAN),
       REQ(api_card_reveal_resp, exp_month, EXP_MONTH),
       REQ(api_card_reveal_resp, exp_year, EXP_YEAR),
       OPT(api_card_reveal_resp, holder, HOLDER))

SCHEMA(api_wallet_decrypt_req,
       REQ(api_wallet_decrypt_req, merchant, MERCHANT),
       REQ(api_wallet_decrypt_req, wallet, WALLET),
       REQ(api_wallet_decrypt_req, packet, PACKET),
       OPT(api_wallet_decrypt_req, amount, AMOUNT),
       OPT(api_wallet_decrypt_req, currency, CURRENCY),
       OPT(api_wallet_decrypt_req, customer_number, CUSTOMER_NUMBER),
       OPT(api_wallet_decrypt_req, consent, CONSENT))
SCHEMA(api_wallet_decrypt_resp,
       REQ(api_wallet_decrypt_resp, token, TOKEN),
       REQ(api_wallet_decrypt_resp, kind, CARD_KIND),
       REQ(api_wallet_decrypt_resp, wallet, WALLET),
       REQ(api_wallet_decrypt_resp, wallet_version, WALLET_VERSION),
       REQ(api_wallet_decrypt_resp, bin, BIN),
       REQ(api_wallet_decrypt_resp, last4, LAST4),
       REQ(api_wallet_decrypt_resp, brand, BRAND),
       REQ(api_wallet_decrypt_resp, exp_month, EXP_MONTH),
       REQ(api_wallet_decrypt_resp, exp_year, EXP_YEAR),
       OPT(api_wallet_decrypt_resp, cryptogram, CRYPTOGRAM),
       OPT(api_wallet_decrypt_resp, eci, ECI),
       OPT(api_wallet_decrypt_resp, amount, AMOUNT),
       OPT(api_wallet_decrypt_resp, currency, CURRENCY),
       REQ(api_wallet_decrypt_resp, auth_method, AUTH_METHOD),
       REQ(api_wallet_decrypt_resp, transaction_id, TRANSACTION_ID),
       REQ(api_wallet_decrypt_resp, expires_at, EXPIRES_AT))

SCHEMA(api_session_init_req,
       REQ(api_session_init_req, merchant, MERCHANT),
       REQ(api_session_init_req, access_token_hash, ACCESS_TOKEN_HASH),
       REQ(api_session_init_req, amount, AMOUNT),
       REQ(api_session_init_req, currency, CURRENCY),
       REQ(api_session_init_req, device_data, DEVICE_DATA),
       OPT(api_session_init_req, lifetime, LIFETIME))
SCHEMA(api_session_init_resp,
       REQ(api_session_init_resp, nonce, NONCE),
       REQ(api_session_init_resp, signature, SIGNATURE),
       REQ(api_session_init_resp, expires_at, EXPIRES_AT))
SCHEMA(api_session_check_req,
       REQ(api_session_check_req, merchant, MERCHANT),
       REQ(api_session_check_req, nonce, NONCE),
       REQ(api_session_check_req, signature, SIGNATURE),
       REQ(api_session_check_req, access_token_hash, ACCESS_TOKEN_HASH),
       REQ(api_session_check_req, amount, AMOUNT),
       REQ(api_session_check_req, currency, CURRENCY),
       REQ(api_session_check_req, device_data, DEVICE_DATA),
       OPT(api_session_check_req, client_card_id, CLIENT_CARD_ID),
       OPT(api_session_check_req, email, EMAIL))
SCHEMA(api_session_check_resp, OPT(api_session_check_resp, token, TOKEN))
SCHEMA(api_card_map_req,
       REQ(api_card_map_req, merchant, MERCHANT),
       REQ(api_card_map_req, client_card_id, CLIENT_CARD_ID),
       REQ(api_card_map_req, token, TOKEN),
       OPT(api_card_map_req, email, EMAIL))
SCHEMA(api_map_resolve_req,
       REQ(api_map_resolve_req, merchant, MERCHANT),
       REQ(api_map_resolve_req, client_card_id, CLIENT_CARD_ID),
       OPT(api_map_resolve_req, email, EMAIL))
SCHEMA(api_map_resolve_resp, REQ(api_map_resolve_resp, token, TOKEN))

SCHEMA(api_mandate_create_req,
       REQ(api_mandate_create_req, merchant, MERCHANT),
       REQ(api_mandate_create_req, token, TOKEN),
       REQ(api_mandate_create_req, customer_number, CUSTOMER_NUMBER),
       REQ(api_mandate_create_req, kind, MANDATE_KIND),
       OPT(api_mandate_create_req, min_amount, MIN_AMOUNT),
       REQ(api_mandate_create_req, max_amount, MAX_AMOUNT),
       REQ(api_mandate_create_req, currency, CURRENCY),
       OPT(api_mandate_create_req, recurring_count, RECURRING_COUNT),
       REQ(api_mandate_create_req, recurring_max_date, RECURRING_MAX_DATE))
SCHEMA(api_mandate_ref,
       REQ(api_mandate_ref, merchant, MERCHANT),
       REQ(api_mandate_ref, token, TOKEN),
       REQ(api_mandate_ref, mandate_id, MANDATE_ID))
SCHEMA(api_mandate_cancel_req,
       REQ(api_mandate_cancel_req, merchant, MERCHANT),
       REQ(api_mandate_cancel_req, token, TOKEN),
       REQ(api_mandate_cancel_req, mandate_id, MANDATE_ID),
       REQ(api_mandate_cancel_req, cancelled_by, CANCELLED_BY))
SCHEMA(api_mandate_info,
       REQ(api_mandate_info, mandate_id, MANDATE_ID),
       REQ(api_mandate_info, token, TOKEN),
       REQ(api_mandate_info, kind, MANDATE_KIND),
       REQ(api_mandate_info, status, MANDATE_STATUS),
       OPT(api_mandate_info, min_amount, MIN_AMOUNT),
       REQ(api_mandate_info, max_amount, MAX_AMOUNT),
       REQ(api_mandate_info, currency, CURRENCY),
       OPT(api_mandate_info, recurring_count, RECURRING_COUNT),
       REQ(api_mandate_info, recurring_max_date, RECURRING_MAX_DATE),
       OPT(api_mandate_info, last_charge_date, LAST_CHARGE_DATE),
       REQ(api_mandate_info, charge_count, CHARGE_COUNT),
       OPT(api_mandate_info, cancelled_by, CANCELLED_BY),
       REQ(api_mandate_info, created_at, CREATED_AT))
SCHEMA(api_cit_authorize_req,
       REQ(api_cit_authorize_req, merchant, MERCHANT),
       REQ(api_cit_authorize_req, token, TOKEN),
       REQ(api_cit_authorize_req, customer_number, CUSTOMER_NUMBER),
       REQ(api_cit_authorize_req, amount, AMOUNT),
       REQ(api_cit_authorize_req, currency, CURRENCY),
       OPT(api_cit_authorize_req, cvc, CVC))
SCHEMA(api_cit_authorize_resp,
       REQ(api_cit_authorize_resp, approval, APPROVAL),
       REQ(api_cit_authorize_resp, need_cvc, NEED_CVC),
       OPT(api_cit_authorize_resp, pan, PAN),
       OPT(api_cit_authorize_resp, exp_month, EXP_MONTH),
       OPT(api_cit_authorize_resp, exp_year, EXP_YEAR),
       OPT(api_cit_authorize_resp, cvc, CVC),
       OPT(api_cit_authorize_resp, initial_txn_id, INITIAL_TXN_ID))
SCHEMA(api_mit_authorize_req,
       REQ(api_mit_authorize_req, merchant, MERCHANT),
       REQ(api_mit_authorize_req, token, TOKEN),
       REQ(api_mit_authorize_req, mandate_id, MANDATE_ID),
       REQ(api_mit_authorize_req, amount, AMOUNT),
       REQ(api_mit_authorize_req, currency, CURRENCY),
       REQ(api_mit_authorize_req, date, DATE))
SCHEMA(api_mit_authorize_resp,
       REQ(api_mit_authorize_resp, approval, APPROVAL),
       REQ(api_mit_authorize_resp, last_charge_date, LAST_CHARGE_DATE),
       REQ(api_mit_authorize_resp, charge_count, CHARGE_COUNT),
       OPT(api_mit_authorize_resp, pan, PAN),
       OPT(api_mit_authorize_resp, exp_month, EXP_MONTH),
       OPT(api_mit_authorize_resp, exp_year, EXP_YEAR),
       OPT(api_mit_authorize_resp, initial_txn_id, INITIAL_TXN_ID))

SCHEMA(api_qr_issue_req,
       REQ(api_qr_issue_req, merchant, MERCHANT),
       REQ(api_qr_issue_req, order_id, ORDER_ID),
       REQ(api_qr_issue_req, amount, AMOUNT),
       REQ(api_qr_issue_req, currency, CURRENCY),
       REQ(api_qr_issue_req, lifetime, LIFETIME))
SCHEMA(api_qr_issue_resp,
       REQ(api_qr_issue_resp, qr_token, QR_TOKEN),
       REQ(api_qr_issue_resp, expires_at, EXPIRES_AT))
SCHEMA(api_qr_redeem_req,
       REQ(api_qr_redeem_req, merchant, MERCHANT),
       REQ(api_qr_redeem_req, qr_token, QR_TOKEN),
       REQ(api_qr_redeem_req, payer_ref, PAYER_REF))
SCHEMA(api_qr_redeem_resp,
       REQ(api_qr_redeem_resp, order_id, ORDER_ID),
       REQ(api_qr_redeem_resp, amount, AMOUNT),
       REQ(api_qr_redeem_resp, currency, CURRENCY),
       REQ(api_qr_redeem_resp, paid_at, PAID_AT))
SCHEMA(api_qr_status_req,
       REQ(api_qr_status_req, merchant, MERCHANT),
       REQ(api_qr_status_req, order_id, ORDER_ID))
SCHEMA(api_qr_info,
       REQ(api_qr_info, order_id, ORDER_ID),
       REQ(api_qr_info, amount, AMOUNT),
       REQ(api_qr_info, currency, CURRENCY),
       REQ(api_qr_info, state, QR_STATE),
       REQ(api_qr_info, expires_at, EXPIRES_AT),
       OPT(api_qr_info, paid_at, PAID_AT),
       OPT(api_qr_info, payer_ref, PAYER_REF))

SCHEMA(api_unseal_share_req,
       REQ(api_unseal_share_req, officer, OFFICER),
       REQ(api_unseal_share_req, share, SHARE))
SCHEMA(api_unseal_share_resp,
       REQ(api_unseal_share_resp, sealed, SEALED),
       REQ(api_unseal_share_resp, shares_received, SHARES_RECEIVED),
       REQ(api_unseal_share_resp, shares_needed, SHARES_NEEDED))
SCHEMA(api_key_item,
       REQ(api_key_item, label, LABEL),
       REQ(api_key_item, key_class, KEY_CLASS),
       REQ(api_key_item, version, KEY_VERSION),
       REQ(api_key_item, state, KEY_STATE),
       REQ(api_key_item, kcv, KCV))
SCHEMA(api_key_status_resp, LIST(api_key_status_resp, keys, KEYS, api_key_item))

SCHEMA(api_error_resp,
       REQ(api_error_resp, message, MESSAGE),
       OPT(api_error_resp, error_tag, ERROR_TAG),
       OPT(api_error_resp, rule, RULE),
       OPT(api_error_resp, retry_after_ms, RETRY_AFTER_MS))

/* ---- lookup ------------------------------------------------------------------ */

struct op_schemas {
    uint16_t opcode;
    const struct api_schema *request;
    const struct api_schema *response;
};

static const struct op_schemas ops[] = {
#define OP_ROW(op, lower, req, resp) {API_OP_##op, &schema_##req, &schema_##resp},
    API_MSG_LIST(OP_ROW)
#undef OP_ROW
};

static const struct op_schemas *
op_find(uint16_t opcode)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (ops[i].opcode == opcode)
            return &ops[i];
    return NULL;
}

const struct api_schema *
api_schema_request(uint16_t opcode)
{
    const struct op_schemas *op = op_find(opcode);

    return op != NULL ? op->request : NULL;
}

const struct api_schema *
api_schema_response(uint16_t opcode)
{
    const struct op_schemas *op = op_find(opcode);

    return op != NULL ? op->response : NULL;
}

const struct api_schema *
api_schema_error(void)
{
    return &schema_api_error_resp;
}

const struct api_field *
api_schema_field(const struct api_schema *s, uint16_t tag)
{
    for (size_t i = 0; i < s->num_fields; i++)
        if (s->fields[i].tag == tag)
            return &s->fields[i];
    return NULL;
}

static const struct api_schema *const all_schemas[] = {
    &schema_api_empty, &schema_api_ping_req, &schema_api_ping_resp, &schema_api_status_resp,
    &schema_api_card_store_req, &schema_api_card_store_resp, &schema_api_card_ref,
    &schema_api_card_mapping_item, &schema_api_card_info, &schema_api_customer_ref, &schema_api_card_item,
    &schema_api_card_list_resp, &schema_api_card_update_req, &schema_api_card_reveal_req,
    &schema_api_card_reveal_resp, &schema_api_wallet_decrypt_req, &schema_api_wallet_decrypt_resp,
    &schema_api_session_init_req, &schema_api_session_init_resp, &schema_api_session_check_req,
    &schema_api_session_check_resp, &schema_api_card_map_req, &schema_api_map_resolve_req,
    &schema_api_map_resolve_resp, &schema_api_mandate_create_req, &schema_api_mandate_ref,
    &schema_api_mandate_cancel_req, &schema_api_mandate_info, &schema_api_cit_authorize_req,
    &schema_api_cit_authorize_resp, &schema_api_mit_authorize_req, &schema_api_mit_authorize_resp,
    &schema_api_qr_issue_req, &schema_api_qr_issue_resp, &schema_api_qr_redeem_req,
    &schema_api_qr_redeem_resp, &schema_api_qr_status_req, &schema_api_qr_info,
    &schema_api_unseal_share_req, &schema_api_unseal_share_resp, &schema_api_key_item,
    &schema_api_key_status_resp, &schema_api_error_resp,
};

const struct api_schema *const *
api_schema_all(size_t *out_num)
{
    *out_num = sizeof(all_schemas) / sizeof(all_schemas[0]);
    return all_schemas;
}
