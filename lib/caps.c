/*
 * caps.c - the JSON capability object carried by VERSION (protocol §3.1).
 *
 * Parsing is strict about what we understand and lenient about what we do
 * not: a known key with the wrong type or an out-of-range value is an
 * error, an unknown key at any level is ignored so that newer peers can
 * add capabilities without breaking us.
 *
 * json-c notes (0.16):
 *
 * - The tokener takes an int length and stops after the first complete
 *   value, so trailing text must be checked by hand: only JSON whitespace
 *   may follow the object.
 *
 * - Integers are stored as int64, or as uint64 when above INT64_MAX.  A
 *   negative number therefore shows up as a negative int64, and a value
 *   beyond UINT64_MAX is silently clamped to UINT64_MAX by the tokener
 *   (json-c gives no way to tell); for the 32-bit keys that still lands
 *   out of range, for pgsizes it reads as "every page size".
 *
 * - Numbers written with a fraction or exponent are doubles, not ints, and
 *   are rejected even when integral ("8.0"): the protocol says number, but
 *   every known peer sends plain integers.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "wire.h"

void
vfu_caps_default(struct vfu_caps *c)
{
    *c = (struct vfu_caps) {
        .max_msg_fds = VFU_DEFAULT_MAX_MSG_FDS,
        .max_data_xfer_size = VFU_DEFAULT_MAX_DATA_XFER,
        .max_dma_maps = VFU_DEFAULT_MAX_DMA_MAPS,
        .pgsizes = VFU_DEFAULT_PGSIZES,
        .write_multiple = false,
        .twin_socket = false,
        .mig_pgsize = 0,
    };
}

uint32_t
vfu_caps_server_fds(uint64_t own_limit, const struct vfu_caps *peer)
{
    uint64_t n = own_limit;

    if (n > VFU_MAX_ADVERTISED_MSG_FDS)
        n = VFU_MAX_ADVERTISED_MSG_FDS;
    if (peer != NULL && n > peer->max_msg_fds)
        n = peer->max_msg_fds;
    return n < 1 ? 1u : (uint32_t)n;
}

/* ---- parsing ---- */

static bool
only_json_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    }
    return true;
}

/*
 * One tokener per thread, reset for each parse: a new one is three
 * allocations, cleared (its stack of 32 levels the largest), on every
 * VERSION.  Freed when its thread exits; without the key (it could not be
 * made), each parse has its own.
 */
static pthread_key_t tok_key;
static bool tok_key_ok;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void
tokener_free(void *tok)
{
    json_tokener_free(tok);
}

static void
tokener_key_make(void)
{
    tok_key_ok = pthread_key_create(&tok_key, tokener_free) == 0;
}

static struct json_tokener *
tokener_get(void)
{
    struct json_tokener *tok = NULL;

    pthread_once(&tok_once, tokener_key_make);
    if (tok_key_ok && (tok = pthread_getspecific(tok_key)) != NULL) {
        /* Taken: a parse on this thread inside another cannot happen,
         * but would get a tokener of its own. */
        pthread_setspecific(tok_key, NULL);
        json_tokener_reset(tok);
    } else if ((tok = json_tokener_new()) == NULL) {
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
                                JSON_TOKENER_VALIDATE_UTF8);
    return tok;
}

static void
tokener_put(struct json_tokener *tok)
{
    if (!tok_key_ok || pthread_setspecific(tok_key, tok) != 0)
        json_tokener_free(tok);
}

/*
 * Turn json[0..len) (NUL last, no other NUL) into a tree.  Returns 0 with
 * *root set, -EINVAL for bad text, -ENOMEM if the tokener cannot be had.
 */
static int
parse_text(const char *json, size_t len, struct json_object **root)
{
    size_t text_len = len - 1;
    struct json_tokener *tok;
    struct json_object *obj;
    size_t end;

    if (json[text_len] != '\0' || memchr(json, '\0', text_len) != NULL)
        return -EINVAL;
    if (text_len > INT_MAX)
        return -EINVAL;

    tok = tokener_get();
    if (tok == NULL)
        return -ENOMEM;
    obj = json_tokener_parse_ex(tok, json, (int)text_len);
    end = json_tokener_get_parse_end(tok);
    tokener_put(tok);

    if (obj == NULL)
        return -EINVAL;
    /*
     * STRICT already refuses most trailing text; checking ourselves keeps
     * the rule independent of that json-c detail.
     */
    if (end > text_len || !only_json_space(json + end, text_len - end) ||
        !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return -EINVAL;
    }
    *root = obj;
    return 0;
}

/*
 * Each opt_* helper looks up key in obj: absent leaves *dst alone, present
 * with the right type and range stores it, anything else is -EINVAL.  A
 * JSON null counts as present (and of the wrong type).
 */
static int
opt_uint(struct json_object *obj, const char *key, uint64_t min,
         uint64_t max, uint64_t *dst)
{
    struct json_object *v;
    uint64_t n;

    if (!json_object_object_get_ex(obj, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) < 0)
        return -EINVAL;
    n = json_object_get_uint64(v);
    if (n < min || n > max)
        return -EINVAL;
    *dst = n;
    return 0;
}

static int
opt_u32(struct json_object *obj, const char *key, uint32_t min,
        uint32_t *dst)
{
    uint64_t n = *dst;
    int ret = opt_uint(obj, key, min, UINT32_MAX, &n);

    *dst = (uint32_t)n;
    return ret;
}

static int
opt_bool(struct json_object *obj, const char *key, bool *dst)
{
    struct json_object *v;

    if (!json_object_object_get_ex(obj, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return -EINVAL;
    *dst = json_object_get_boolean(v);
    return 0;
}

/* *dst is set to NULL when key is absent. */
static int
opt_object(struct json_object *obj, const char *key, struct json_object **dst)
{
    struct json_object *v;

    *dst = NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_object))
        return -EINVAL;
    *dst = v;
    return 0;
}

static int
read_caps(struct json_object *root, struct vfu_caps *c)
{
    struct json_object *caps, *twin, *mig;

    if (opt_object(root, "capabilities", &caps) < 0)
        return -EINVAL;
    if (caps == NULL)
        return 0;

    if (opt_u32(caps, "max_msg_fds", 0, &c->max_msg_fds) < 0 ||
        opt_u32(caps, "max_data_xfer_size", 1, &c->max_data_xfer_size) < 0 ||
        opt_u32(caps, "max_dma_maps", 1, &c->max_dma_maps) < 0 ||
        opt_uint(caps, "pgsizes", 1, UINT64_MAX, &c->pgsizes) < 0 ||
        opt_bool(caps, "write_multiple", &c->write_multiple) < 0)
        return -EINVAL;

    /* fd_index only matters to a client; a server reads "supported". */
    if (opt_object(caps, "twin_socket", &twin) < 0)
        return -EINVAL;
    if (twin != NULL && opt_bool(twin, "supported", &c->twin_socket) < 0)
        return -EINVAL;

    /* libvfio-user's older form; max_bitmap_size is not used by us. */
    if (opt_object(caps, "migration", &mig) < 0)
        return -EINVAL;
    if (mig != NULL && opt_uint(mig, "pgsize", 1, UINT64_MAX,
                                &c->mig_pgsize) < 0)
        return -EINVAL;
    return 0;
}

/*
 * On failure *out is left untouched, so a caller that wants the defaults
 * after a bad VERSION has to ask for them explicitly.
 */
int
vfu_caps_parse(const char *json, size_t len, struct vfu_caps *out)
{
    struct json_object *root;
    struct vfu_caps c;
    int ret;

    vfu_caps_default(&c);
    if (json == NULL || len == 0) {
        *out = c;
        return 0;
    }

    ret = parse_text(json, len, &root);
    if (ret < 0)
        return ret;
    ret = read_caps(root, &c);
    json_object_put(root);
    if (ret == 0)
        *out = c;
    return ret;
}

/* ---- building ---- */

/*
 * Every value is a number or true, so the text is written directly, in
 * the form json-c's plain printer gives (key order as below, no spaces).
 * Building a json-c tree for it cost a dozen allocations per VERSION.
 */
int
vfu_caps_build(const struct vfu_caps *c, char *buf, size_t buflen)
{
    char text[320], mig[64] = "";
    int n;

    if (c->mig_pgsize != 0)
        snprintf(mig, sizeof(mig), ",\"migration\":{\"pgsize\":%llu}",
                 (unsigned long long)c->mig_pgsize);
    /*
     * twin_socket is never built here: its reply form names an fd_index,
     * which only the connection code that passes the fd can know.
     */
    n = snprintf(text, sizeof(text),
                 "{\"capabilities\":{\"max_msg_fds\":%u,"
                 "\"max_data_xfer_size\":%u,\"max_dma_maps\":%u,"
                 "\"pgsizes\":%llu%s%s}}",
                 (unsigned)c->max_msg_fds, (unsigned)c->max_data_xfer_size,
                 (unsigned)c->max_dma_maps, (unsigned long long)c->pgsizes,
                 c->write_multiple ? ",\"write_multiple\":true" : "", mig);
    /* text cannot be too short (the longest is ~190 bytes) */
    if (n < 0 || (size_t)n >= sizeof(text) || (size_t)n >= buflen)
        return -ENOSPC;
    memcpy(buf, text, (size_t)n + 1);
    return n + 1;
}
