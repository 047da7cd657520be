/*
 * mandate.h - a merchant-initiated (MIT) mandate as it lies in the mandates
 * database, and the rules a charge against it must pass.
 *
 * A mandate is what the payer agreed to when the card was saved (seed 003:
 * RecurringMinAmount, RecurringMaxAmount, RecurringCount days,
 * RecurringMaxDate, and the currency) plus the state the vault keeps to
 * enforce it: the last approved charge's date, how many were approved, and
 * whether and by whom it was cancelled. The database key is
 * token 0x00 mandate id; the record holds nothing secret (amounts, dates,
 * the merchant and CustomerNumber), so it is kept in clear, as a card
 * record's header is.
 *
 * A record is read back through the cursor reader and every field is
 * checked, the same invariants encode refuses to break (a record decode
 * would refuse is never written); mandate_decode has a fuzz target
 * (tests/fuzz/fuzz_mandate_decode.c).
 *
 * Dates are UTC calendar days. Pure functions: no I/O, no allocation,
 * thread-safe.
 */
#ifndef TOKENVAULT_VAULT_MANDATE_H
#define TOKENVAULT_VAULT_MANDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api/msg.h"
#include "api/proto.h"
#include "api/writer.h"

/* Layout version of a mandate record; a record of another version is refused. */
#define MANDATE_VERSION 1u
/* The largest encoded record: 54 bytes of fixed fields, the merchant and the
 * CustomerNumber as str8 (152 at most). A test checks it against what
 * mandate_encode writes. */
#define MANDATE_MAX 160u
/* The database key: token 0x00 mandate id. Tokens and ids are printable
 * ASCII, so the 0x00 cannot occur inside one. */
#define MANDATE_KEY_MAX (API_ID_MAX + 1u + API_ID_MAX)

/* The rule names sent in RULE with LIMIT_EXCEEDED (docs/PROTOCOL.md 8, 11). */
#define MANDATE_RULE_END_DATE "end_date"
#define MANDATE_RULE_MAX_AMOUNT "max_amount"
#define MANDATE_RULE_MIN_AMOUNT "min_amount"
#define MANDATE_RULE_FREQUENCY "frequency"

struct mandate_record {
    uint8_t kind;            /* enum api_mandate_kind */
    uint8_t status;          /* API_MANDATE_ACTIVE or API_MANDATE_CANCELLED; ENDED is
                                never stored: it is ACTIVE past its end date */
    uint8_t cancelled_by;    /* enum api_cancelled_by; 0 unless cancelled */
    uint64_t min_amount;     /* minor units; recurring only, 0 for unscheduled */
    uint64_t max_amount;     /* minor units, 1..API_AMOUNT_MAX */
    char currency[API_CURRENCY_LEN + 1];
    uint16_t recurring_count; /* days between charges; recurring 1..999, unscheduled 0 */
    struct api_date max_date; /* RecurringMaxDate: the last day a charge may carry */
    bool has_last_charge;
    struct api_date last_charge; /* the date of the last approved charge */
    uint32_t charge_count;   /* approved charges; 0 exactly when !has_last_charge */
    uint64_t created_at;     /* unix seconds */
    uint64_t cancelled_at;   /* unix seconds; 0 unless cancelled */
    char merchant[API_ID_MAX + 1];
    char customer[API_CUSTOMER_NUMBER_MAX + 1]; /* the CustomerNumber it was made for */
};

/* mandate_encode appends the record's bytes to |w|. 0, -API_STATUS_INTERNAL
 * for a record mandate_decode would refuse, or the writer's error. */
int mandate_encode(struct api_writer *w, const struct mandate_record *m);

/* mandate_decode parses |len| bytes at |data| into |out| (zeroed first).
 * Returns 0 or -API_STATUS_INTERNAL for anything malformed: another version,
 * a value out of range, fields that contradict each other (a cancelled
 * mandate without who cancelled it, an unscheduled one with a minimum, a
 * charge count without a charge date), a NUL inside a string, trailing
 * bytes. |out| is left zeroed on failure. */
int mandate_decode(struct mandate_record *out, const uint8_t *data, size_t len);

/* mandate_key writes the database key of mandate |id| of |token| into |out|
 * and returns its length. Both strings are 1..API_ID_MAX bytes (the codec
 * has held them there). */
size_t mandate_key(uint8_t out[MANDATE_KEY_MAX], const char *token, const char *id);

/* mandate_date_days: the days from 1970-01-01 to |d|. 0, or
 * -API_STATUS_INVALID_ARGUMENT when |d| is not a real date of years
 * 2000..9999 (out untouched). */
int mandate_date_days(const struct api_date *d, int32_t *out);

/* The UTC day number (days since 1970-01-01) of unix time |now|. */
int32_t mandate_day_of(time_t now);

/* The status a mandate has on day |today|: CANCELLED, ENDED once |today| is
 * past its RecurringMaxDate, else ACTIVE. */
enum api_mandate_status mandate_status_on(const struct mandate_record *m, int32_t today);

/* What refuses a charge: the status, the tag at fault (0 for none), the rule
 * (LIMIT_EXCEEDED only, else NULL) and a fixed message. */
struct mandate_refusal {
    unsigned status;
    uint16_t tag;
    const char *rule;
    const char *message;
};

/* mandate_charge_check applies the mandate's rules to a charge of |amount|
 * in |currency| dated |date|, on day |today|, in the order docs/PROTOCOL.md
 * gives (MIT_AUTHORIZE): the currency (MISMATCH), the end date, the date
 * itself (INVALID_ARGUMENT: after today, before the mandate was made, before
 * the last charge), the maximum, the minimum, the frequency (each
 * LIMIT_EXCEEDED with its rule). The mandate must be ACTIVE on |today|
 * (the caller checks that first). Returns 0, or the refusal's negated status
 * with |out| filled. */
int mandate_charge_check(const struct mandate_record *m, uint64_t amount, const char *currency,
                         const struct api_date *date, int32_t today, struct mandate_refusal *out);

/* mandate_charge_record notes an approved charge dated |date| (which
 * mandate_charge_check accepted). 0, or -API_STATUS_INTERNAL when the count
 * would overflow (then |m| is unchanged). */
int mandate_charge_record(struct mandate_record *m, const struct api_date *date);

#endif
