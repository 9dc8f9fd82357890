/* The admin API: the overlay of run-time server changes, its state file, and the /admin
 * endpoints that list, add, remove, drain and undrain servers and trigger a reload. */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "fleet.h"
#include "http_client.h"
#include "log.h"
#include "status_json.h"

#define STATE_VERSION   1
#define MAX_STATE_BYTES (16u << 20) /* a state file past this is not ours */
#define MAX_MODELS      1024

struct strlist {
    char **v; /* owned array of owned strings */
    size_t n;
};

/* The changes made through the API. */
struct overlay {
    struct rt_server_conf *added; /* owned array */
    size_t nadded;
    struct strlist removed;
    struct strlist drained;
};

static struct {
    pthread_mutex_t lock; /* guards everything below but <reload_requested> and <listening> */
    char *state_file;     /* owned; NULL = memory only */
    struct overlay ov;
    /* The servers of the configuration last given to rt_admin_apply, before the overlay. */
    struct rt_server_conf *base; /* owned array */
    size_t nbase;
    bool have_base;
    bool base_from_cli;
    char *cfg_token;      /* owned; admin.token of the applied configuration */
    char *token_override; /* owned; NULL = use cfg_token */
    void (*hook)(void *arg);
    void *hook_arg;
    atomic_bool reload_requested;
    /* The separate listener: touched only on its loop's thread. */
    struct rt_http_server *srv;
    atomic_bool listening;
} adm = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- small helpers ------------------------------------------------------------------------ */

static ssize_t strlist_find(const struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return (ssize_t)i;
    return -1;
}

static bool strlist_add(struct strlist *l, const char *s)
{
    if (strlist_find(l, s) >= 0)
        return false;
    l->v = rt_realloc(l->v, (l->n + 1) * sizeof l->v[0]);
    l->v[l->n++] = rt_strdup(s);
    return true;
}

static bool strlist_del(struct strlist *l, const char *s)
{
    ssize_t i = strlist_find(l, s);
    if (i < 0)
        return false;
    rt_free(l->v[i]);
    memmove(&l->v[i], &l->v[i + 1], (l->n - (size_t)i - 1) * sizeof l->v[0]);
    l->n--;
    return true;
}

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        rt_free(l->v[i]);
    rt_free(l->v);
    *l = (struct strlist){0};
}

static void strlist_copy(struct strlist *dst, const struct strlist *src)
{
    *dst = (struct strlist){0};
    for (size_t i = 0; i < src->n; i++)
        strlist_add(dst, src->v[i]);
}

static char *dup_or_null(const char *s)
{
    return s ? rt_strdup(s) : NULL;
}

static void conf_copy(struct rt_server_conf *dst, const struct rt_server_conf *src)
{
    *dst = *src;
    dst->url = dup_or_null(src->url);
    dst->scheme = dup_or_null(src->scheme);
    dst->host = dup_or_null(src->host);
    dst->base_path = dup_or_null(src->base_path);
    dst->api_key = dup_or_null(src->api_key);
    dst->name = dup_or_null(src->name);
    dst->models = src->nmodels ? rt_calloc(src->nmodels, sizeof dst->models[0]) : NULL;
    for (size_t i = 0; i < src->nmodels; i++)
        dst->models[i] = rt_strdup(src->models[i]);
}

static void confs_free(struct rt_server_conf *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rt_server_conf_clear(&v[i]);
    rt_free(v);
}

static void overlay_free(struct overlay *o)
{
    confs_free(o->added, o->nadded);
    strlist_free(&o->removed);
    strlist_free(&o->drained);
    *o = (struct overlay){0};
}

static void overlay_copy(struct overlay *dst, const struct overlay *src)
{
    *dst = (struct overlay){0};
    dst->added = src->nadded ? rt_calloc(src->nadded, sizeof dst->added[0]) : NULL;
    dst->nadded = src->nadded;
    for (size_t i = 0; i < src->nadded; i++)
        conf_copy(&dst->added[i], &src->added[i]);
    strlist_copy(&dst->removed, &src->removed);
    strlist_copy(&dst->drained, &src->drained);
}

static void added_del(struct overlay *o, size_t i)
{
    rt_server_conf_clear(&o->added[i]);
    memmove(&o->added[i], &o->added[i + 1], (o->nadded - i - 1) * sizeof o->added[0]);
    o->nadded--;
}

static ssize_t added_find(const struct overlay *o, const char *url)
{
    for (size_t i = 0; i < o->nadded; i++)
        if (strcmp(o->added[i].url, url) == 0)
            return (ssize_t)i;
    return -1;
}

static const struct rt_server_conf *base_find(const char *url)
{
    for (size_t i = 0; i < adm.nbase; i++)
        if (strcmp(adm.base[i].url, url) == 0)
            return &adm.base[i];
    return NULL;
}

/* Whether <url> is configured now: a base server not removed, or an added one. Locked. */
static bool effective(const char *url)
{
    return (base_find(url) && strlist_find(&adm.ov.removed, url) < 0) ||
           added_find(&adm.ov, url) >= 0;
}

/* Normalises <in> the way server URLs are matched; *<out> is the caller's. */
static int norm_url(const char *in, char **out, char *err, size_t errlen)
{
    struct rt_server_conf s = {0};
    if (rt_server_conf_parse_url(in, &s, err, errlen) != 0)
        return RT_ADMIN_EINVAL;
    *out = s.url;
    s.url = NULL;
    rt_server_conf_clear(&s);
    return 0;
}

/* jansson strings are malloc'd by jansson: copy into our allocator. */
static char *dumps(const json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags | JSON_ENCODE_ANY);
    char *r = rt_strdup(s ? s : "null");
    free(s);
    return r;
}

/* ---- server entries as JSON --------------------------------------------------------------- */

static const char *const server_fields[] = {
    "url", "max_concurrent_requests", "models", "weight", "api_key", "name", NULL,
};

static const struct rt_config_key *server_key(const char *name)
{
    for (size_t i = 0; i < rt_config_nserver_keys; i++)
        if (strcmp(rt_config_server_keys[i].name, name) == 0)
            return &rt_config_server_keys[i];
    return NULL;
}

static void value_text(const json_t *v, char *out, size_t outlen)
{
    char *s = dumps(v, JSON_COMPACT);
    snprintf(out, outlen, "%.80s%s", s, strlen(s) > 80 ? "..." : "");
    rt_free(s);
}

static int server_from_json(const json_t *o, struct rt_server_conf *out, char *err, size_t errlen)
{
    char got[100];
    const char *key;
    json_t *v;
    *out = (struct rt_server_conf){0};
    if (!json_is_object(o)) {
        snprintf(err, errlen, "a server must be a JSON object such as {\"url\": "
                              "\"http://10.0.0.7:8000\", \"max_concurrent_requests\": 4}");
        return RT_ADMIN_EINVAL;
    }
    json_object_foreach((json_t *)o, key, v) {
        const char *best = NULL;
        size_t bestd = SIZE_MAX;
        bool known = false;
        for (size_t i = 0; server_fields[i] && !known; i++) {
            known = strcmp(key, server_fields[i]) == 0;
            size_t d = rt_config_edit_distance(key, server_fields[i]);
            if (d < bestd) {
                bestd = d;
                best = server_fields[i];
            }
        }
        if (known)
            continue;
        if (bestd <= 3)
            snprintf(err, errlen, "unknown key \"%.60s\" in server entry; did you mean \"%s\"?",
                     key, best);
        else
            snprintf(err, errlen, "unknown key \"%.60s\" in server entry; the keys are url, "
                                  "max_concurrent_requests, models, weight, api_key and name",
                     key);
        return RT_ADMIN_EINVAL;
    }
    const json_t *url = json_object_get(o, "url");
    if (!json_is_string(url)) {
        snprintf(err, errlen, "\"url\" is required: a string such as \"http://10.0.0.7:8000\"");
        return RT_ADMIN_EINVAL;
    }
    const char *u = json_string_value(url);
    if (strchr(u, '=')) { /* rt_server_conf_from_spec would read "=N" as a capacity */
        snprintf(err, errlen, "url must not contain '=', got \"%.200s\"", u);
        return RT_ADMIN_EINVAL;
    }
    if (rt_server_conf_from_spec(u, out, err, errlen) != 0)
        return RT_ADMIN_EINVAL;

    const struct rt_config_key *k = server_key("max_concurrent_requests");
    v = json_object_get(o, "max_concurrent_requests");
    if (v) {
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
        if (!json_is_integer(v) || n < (json_int_t)k->min || n > (json_int_t)k->max) {
            value_text(v, got, sizeof got);
            snprintf(err, errlen, "max_concurrent_requests must be an integer between %.0f and "
                                  "%.0f, got %s", k->min, k->max, got);
            goto fail;
        }
        out->max_concurrent_requests = (int)n;
    }
    k = server_key("weight");
    v = json_object_get(o, "weight");
    if (v) {
        double w = json_is_number(v) ? json_number_value(v) : 0;
        if (!json_is_number(v) || !(w > k->min) || w > k->max) {
            value_text(v, got, sizeof got);
            snprintf(err, errlen,
                     "weight must be a number greater than %.15g and at most %.15g, got %s",
                     k->min, k->max, got);
            goto fail;
        }
        out->weight = w;
    }
    v = json_object_get(o, "models");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) > MAX_MODELS) {
            value_text(v, got, sizeof got);
            snprintf(err, errlen, "models must be an array of at most %d model ids, got %s",
                     MAX_MODELS, got);
            goto fail;
        }
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            const json_t *m = json_array_get(v, i);
            if (!json_is_string(m) || json_string_length(m) == 0 ||
                strlen(json_string_value(m)) != json_string_length(m)) {
                value_text(m, got, sizeof got);
                snprintf(err, errlen, "models[%zu] must be a non-empty string, got %s", i, got);
                goto fail;
            }
        }
        out->models = n ? rt_calloc(n, sizeof out->models[0]) : NULL;
        for (size_t i = 0; i < n; i++)
            out->models[out->nmodels++] = rt_strdup(json_string_value(json_array_get(v, i)));
    }
    v = json_object_get(o, "api_key");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            strpbrk(json_string_value(v), "\r\n")) {
            snprintf(err, errlen, "api_key must be a string without line breaks (or null for "
                                  "none)");
            goto fail;
        }
        if (json_string_length(v) > 0)
            out->api_key = rt_strdup(json_string_value(v));
    }
    v = json_object_get(o, "name");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            value_text(v, got, sizeof got);
            snprintf(err, errlen, "name must be a non-empty string, got %s", got);
            goto fail;
        }
        rt_free(out->name);
        out->name = rt_strdup(json_string_value(v));
    }
    return 0;
fail:
    rt_server_conf_clear(out);
    return RT_ADMIN_EINVAL;
}

/* The entry as the state file and the API show it; the API key only when <with_key>. */
static json_t *server_to_json(const struct rt_server_conf *s, bool with_key)
{
    json_t *o = json_object();
    json_object_set_new(o, "url", json_string(s->url));
    json_object_set_new(o, "name", json_string(s->name ? s->name : ""));
    json_object_set_new(o, "max_concurrent_requests", json_integer(s->max_concurrent_requests));
    json_object_set_new(o, "weight", json_real(s->weight));
    json_t *m = json_array();
    for (size_t i = 0; i < s->nmodels; i++)
        json_array_append_new(m, json_string(s->models[i]));
    json_object_set_new(o, "models", m);
    if (with_key) {
        if (s->api_key)
            json_object_set_new(o, "api_key", json_string(s->api_key));
    } else {
        json_object_set_new(o, "api_key_set", json_boolean(s->api_key != NULL));
    }
    return o;
}

int rt_admin_server_parse(const char *json, size_t len, struct rt_server_conf *out, char *err,
                          size_t errlen)
{
    json_error_t je;
    *out = (struct rt_server_conf){0};
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "the body is not valid JSON: %s (at line %d, column %d)", je.text,
                 je.line, je.column);
        return RT_ADMIN_EINVAL;
    }
    int rc = server_from_json(root, out, err, errlen);
    json_decref(root);
    return rc;
}

/* ---- the state file ----------------------------------------------------------------------- */

/* Locked. */
static json_t *overlay_to_json(const struct overlay *o)
{
    json_t *root = json_object();
    json_object_set_new(root, "version", json_integer(STATE_VERSION));
    json_t *a = json_array();
    for (size_t i = 0; i < o->nadded; i++)
        json_array_append_new(a, server_to_json(&o->added[i], true));
    json_object_set_new(root, "added", a);
    json_t *r = json_array();
    for (size_t i = 0; i < o->removed.n; i++)
        json_array_append_new(r, json_string(o->removed.v[i]));
    json_object_set_new(root, "removed", r);
    json_t *d = json_array();
    for (size_t i = 0; i < o->drained.n; i++)
        json_array_append_new(d, json_string(o->drained.v[i]));
    json_object_set_new(root, "drained", d);
    return root;
}

static int url_list_from_json(const json_t *a, const char *what, struct strlist *out, char *err,
                              size_t errlen)
{
    if (!a)
        return 0;
    if (!json_is_array(a)) {
        snprintf(err, errlen, "\"%s\" must be an array of server URLs", what);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *s = json_array_get(a, i);
        char *url = NULL, uerr[300];
        if (!json_is_string(s) || norm_url(json_string_value(s), &url, uerr, sizeof uerr) != 0) {
            snprintf(err, errlen, "%s[%zu]: %s", what, i,
                     json_is_string(s) ? uerr : "must be a server URL string");
            return -1;
        }
        strlist_add(out, url);
        rt_free(url);
    }
    return 0;
}

static int overlay_from_json(const char *text, size_t len, struct overlay *o, char *err,
                             size_t errlen)
{
    json_error_t je;
    int rc = -1;
    *o = (struct overlay){0};
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "line %d, column %d: %s", je.line, je.column, je.text);
        return -1;
    }
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the top level must be a JSON object");
        goto out;
    }
    json_object_foreach(root, key, v) {
        if (strcmp(key, "version") != 0 && strcmp(key, "added") != 0 &&
            strcmp(key, "removed") != 0 && strcmp(key, "drained") != 0) {
            snprintf(err, errlen, "unknown key \"%.60s\"", key);
            goto out;
        }
    }
    v = json_object_get(root, "version");
    if (!json_is_integer(v) || json_integer_value(v) != STATE_VERSION) {
        snprintf(err, errlen, "\"version\" must be %d", STATE_VERSION);
        goto out;
    }
    v = json_object_get(root, "added");
    if (v && !json_is_array(v)) {
        snprintf(err, errlen, "\"added\" must be an array of server entries");
        goto out;
    }
    for (size_t i = 0; v && i < json_array_size(v); i++) {
        struct rt_server_conf s;
        char serr[400];
        if (server_from_json(json_array_get(v, i), &s, serr, sizeof serr) != 0) {
            snprintf(err, errlen, "added[%zu]: %s", i, serr);
            goto out;
        }
        if (added_find(o, s.url) >= 0) {
            snprintf(err, errlen, "added[%zu]: %s is listed twice", i, s.url);
            rt_server_conf_clear(&s);
            goto out;
        }
        o->added = rt_realloc(o->added, (o->nadded + 1) * sizeof o->added[0]);
        o->added[o->nadded++] = s;
    }
    if (url_list_from_json(json_object_get(root, "removed"), "removed", &o->removed, err,
                           errlen) != 0 ||
        url_list_from_json(json_object_get(root, "drained"), "drained", &o->drained, err,
                           errlen) != 0)
        goto out;
    rc = 0;
out:
    json_decref(root);
    if (rc != 0)
        overlay_free(o);
    return rc;
}

/* Writes <data> to <path> so that a reader sees the old file or the new one, never a part:
 * a temporary file beside it, fsync, rename over, fsync of the directory. */
static int write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    int fd = -1, rc = -1;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        snprintf(err, errlen, "state file path is too long");
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %.300s: %s", tmp, strerror(errno));
        return -1;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot write %.300s: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "cannot sync %.300s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "cannot write %.300s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename a temporary file over %.300s: %s", path,
                 strerror(errno));
        goto out;
    }
    /* The rename itself is durable only once the directory is synced. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Writes the overlay to the state file (nothing without one). Locked. */
static int persist(char *err, size_t errlen)
{
    if (!adm.state_file)
        return 0;
    json_t *root = overlay_to_json(&adm.ov);
    char *text = dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    size_t n = strlen(text);
    text = rt_realloc(text, n + 2);
    text[n++] = '\n';
    int rc = write_atomic(adm.state_file, text, n, err, errlen);
    rt_free(text);
    return rc;
}

/* Persists a change made to adm.ov; when that fails, puts back <saved> (the overlay before the
 * change). Frees whichever is not kept. Locked. */
static int commit(struct overlay *saved, char *err, size_t errlen)
{
    char werr[512];
    if (persist(werr, sizeof werr) != 0) {
        overlay_free(&adm.ov);
        adm.ov = *saved;
        snprintf(err, errlen, "the change was not made: %.400s", werr);
        RT_ERROR("admin: %s", err);
        return RT_ADMIN_EIO;
    }
    overlay_free(saved);
    return 0;
}

int rt_admin_init(const char *state_file, char *err, size_t errlen)
{
    int rc = -1;
    char *text = NULL;
    FILE *f = NULL;
    pthread_mutex_lock(&adm.lock);
    overlay_free(&adm.ov);
    rt_free(adm.state_file);
    adm.state_file = state_file && state_file[0] ? rt_strdup(state_file) : NULL;
    if (!adm.state_file) {
        rc = 0;
        goto out;
    }
    f = fopen(adm.state_file, "rb");
    if (!f) {
        if (errno == ENOENT) {
            rc = 0;
        } else {
            snprintf(err, errlen, "cannot read the admin state file %.300s: %s", adm.state_file,
                     strerror(errno));
        }
        goto out;
    }
    text = rt_malloc(MAX_STATE_BYTES + 1);
    size_t n = fread(text, 1, MAX_STATE_BYTES + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read the admin state file %.300s: %s", adm.state_file,
                 strerror(errno));
        goto out;
    }
    char perr[512];
    struct overlay o;
    int bad = n > MAX_STATE_BYTES;
    if (bad)
        snprintf(perr, sizeof perr, "larger than %u bytes", MAX_STATE_BYTES);
    else
        bad = overlay_from_json(text, n, &o, perr, sizeof perr) != 0;
    if (bad) {
        char aside[PATH_MAX];
        snprintf(aside, sizeof aside, "%s.bad", adm.state_file);
        if (rename(adm.state_file, aside) == 0)
            RT_ERROR("admin state file %s is not valid (%s); moved it to %s and starting with "
                     "no admin changes", adm.state_file, perr, aside);
        else
            RT_ERROR("admin state file %s is not valid (%s) and could not be moved to %s (%s); "
                     "starting with no admin changes", adm.state_file, perr, aside,
                     strerror(errno));
        rc = 0;
        goto out;
    }
    adm.ov = o;
    RT_INFO("admin state %s: %zu added, %zu removed, %zu drained", adm.state_file, o.nadded,
            o.removed.n, o.drained.n);
    rc = 0;
out:
    if (f)
        fclose(f);
    rt_free(text);
    pthread_mutex_unlock(&adm.lock);
    return rc;
}

void rt_admin_shutdown(void)
{
    pthread_mutex_lock(&adm.lock);
    overlay_free(&adm.ov);
    rt_free(adm.state_file);
    adm.state_file = NULL;
    confs_free(adm.base, adm.nbase);
    adm.base = NULL;
    adm.nbase = 0;
    adm.have_base = false;
    adm.base_from_cli = false;
    rt_free(adm.cfg_token);
    adm.cfg_token = NULL;
    rt_free(adm.token_override);
    adm.token_override = NULL;
    adm.hook = NULL;
    adm.hook_arg = NULL;
    atomic_store(&adm.reload_requested, false);
    pthread_mutex_unlock(&adm.lock);
}

/* ---- the overlay meets the configuration -------------------------------------------------- */

/* Replaces <cfg>'s servers with the base (or <cfg>'s own when there is none yet) minus removed
 * plus added, the base winning on equal URLs. Locked. */
static void compose(struct rt_config *cfg, const struct rt_server_conf *base, size_t nbase)
{
    struct rt_server_conf *old = cfg->servers;
    size_t nold = cfg->nservers;
    char err[300];
    cfg->servers = NULL;
    cfg->nservers = 0;
    for (size_t i = 0; i < nbase; i++)
        if (strlist_find(&adm.ov.removed, base[i].url) < 0)
            rt_config_add_server(cfg, &base[i], err, sizeof err);
    for (size_t i = 0; i < adm.ov.nadded; i++) {
        bool in_base = false;
        for (size_t k = 0; k < nbase && !in_base; k++)
            in_base = strcmp(base[k].url, adm.ov.added[i].url) == 0;
        if (!in_base) /* a duplicate is refused by rt_config_add_server: nothing to do */
            rt_config_add_server(cfg, &adm.ov.added[i], err, sizeof err);
    }
    confs_free(old, nold);
}

int rt_admin_apply(struct rt_config *cfg, char *err, size_t errlen)
{
    if (!cfg) {
        snprintf(err, errlen, "no configuration to apply the admin changes to");
        return -1;
    }
    pthread_mutex_lock(&adm.lock);
    confs_free(adm.base, adm.nbase);
    adm.base = cfg->nservers ? rt_calloc(cfg->nservers, sizeof adm.base[0]) : NULL;
    adm.nbase = cfg->nservers;
    for (size_t i = 0; i < cfg->nservers; i++)
        conf_copy(&adm.base[i], &cfg->servers[i]);
    adm.have_base = true;
    adm.base_from_cli = cfg->servers_from_cli;

    /* Drop what the file made redundant: an added server the file now lists (the file's entry
     * wins from now on), a removal of a URL the file no longer lists (so adding it to the file
     * again brings it back). With --server flags the file's list is not in view: keep
     * removals. */
    bool pruned = false;
    for (size_t i = adm.ov.nadded; i-- > 0;)
        if (base_find(adm.ov.added[i].url)) {
            RT_INFO("admin: server %s is now in the configuration file; the file's entry is "
                    "used from now on", adm.ov.added[i].url);
            added_del(&adm.ov, i);
            pruned = true;
        }
    for (size_t i = adm.ov.removed.n; !adm.base_from_cli && i-- > 0;)
        if (!base_find(adm.ov.removed.v[i])) {
            strlist_del(&adm.ov.removed, adm.ov.removed.v[i]);
            pruned = true;
        }
    for (size_t i = adm.ov.drained.n; i-- > 0;)
        if (!effective(adm.ov.drained.v[i])) {
            strlist_del(&adm.ov.drained, adm.ov.drained.v[i]);
            pruned = true;
        }
    compose(cfg, adm.base, adm.nbase);
    rt_free(adm.cfg_token);
    adm.cfg_token = rt_strdup(cfg->admin.token ? cfg->admin.token : "");
    char werr[512];
    if (pruned && persist(werr, sizeof werr) != 0)
        RT_WARN("admin: %s (the state file keeps entries the configuration made redundant)",
                werr);
    pthread_mutex_unlock(&adm.lock);
    return 0;
}

struct rt_config *rt_admin_rebuild(const struct rt_config *cur)
{
    struct rt_config *cfg = rt_config_clone(cur);
    pthread_mutex_lock(&adm.lock);
    if (adm.have_base) {
        compose(cfg, adm.base, adm.nbase);
    } else {
        struct rt_config *tmp = rt_config_clone(cur);
        compose(cfg, tmp->servers, tmp->nservers);
        rt_config_free(tmp);
    }
    pthread_mutex_unlock(&adm.lock);
    return cfg;
}

bool rt_admin_is_drained(const char *url)
{
    pthread_mutex_lock(&adm.lock);
    bool d = url && strlist_find(&adm.ov.drained, url) >= 0;
    pthread_mutex_unlock(&adm.lock);
    return d;
}

void rt_admin_set_change_hook(void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&adm.lock);
    adm.hook = fn;
    adm.hook_arg = arg;
    pthread_mutex_unlock(&adm.lock);
}

bool rt_admin_take_reload_request(void)
{
    return atomic_exchange(&adm.reload_requested, false);
}

void rt_admin_set_token(const char *token)
{
    pthread_mutex_lock(&adm.lock);
    rt_free(adm.token_override);
    adm.token_override = dup_or_null(token);
    pthread_mutex_unlock(&adm.lock);
}

static void changed(void)
{
    pthread_mutex_lock(&adm.lock);
    void (*fn)(void *) = adm.hook;
    void *arg = adm.hook_arg;
    pthread_mutex_unlock(&adm.lock);
    if (fn)
        fn(arg);
}

/* Sets the draining flag of the live backend for <url>, so the change holds before the
 * control thread rebuilds the fleet. */
static void fleet_drain(const char *url, bool on)
{
    struct rt_backend *b = rt_fleet_find(url);
    if (b) {
        atomic_store(&b->draining, on);
        rt_backend_unref(b);
    }
}

/* ---- operations --------------------------------------------------------------------------- */

int rt_admin_add(const struct rt_server_conf *s, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    char rerr[300];
    if (!s || !s->url || !s->host) {
        snprintf(err, errlen, "a server needs a url");
        return RT_ADMIN_EINVAL;
    }
    if (rt_http_resolve(s->host, s->port, &ss, rerr, sizeof rerr) != 0) {
        snprintf(err, errlen, "server %s: %s", s->url, rerr);
        return RT_ADMIN_EINVAL;
    }
    pthread_mutex_lock(&adm.lock);
    int rc;
    if (effective(s->url)) {
        snprintf(err, errlen, "server %s is already configured", s->url);
        rc = RT_ADMIN_ECONFLICT;
        goto out;
    }
    struct overlay saved;
    overlay_copy(&saved, &adm.ov);
    if (base_find(s->url)) {
        strlist_del(&adm.ov.removed, s->url); /* back to the file's entry */
    } else {
        adm.ov.added = rt_realloc(adm.ov.added, (adm.ov.nadded + 1) * sizeof adm.ov.added[0]);
        conf_copy(&adm.ov.added[adm.ov.nadded++], s);
    }
    rc = commit(&saved, err, errlen);
out:
    pthread_mutex_unlock(&adm.lock);
    if (rc == 0) {
        RT_INFO("admin: added server %s", s->url);
        changed();
    }
    return rc;
}

int rt_admin_remove(const char *url_in, char *err, size_t errlen)
{
    char *url = NULL;
    int rc = norm_url(url_in ? url_in : "", &url, err, errlen);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&adm.lock);
    if (!effective(url)) {
        snprintf(err, errlen, "no configured server has the url %s", url);
        rc = RT_ADMIN_ENOTFOUND;
        goto out;
    }
    struct overlay saved;
    overlay_copy(&saved, &adm.ov);
    ssize_t i = added_find(&adm.ov, url);
    if (i >= 0)
        added_del(&adm.ov, (size_t)i);
    if (base_find(url))
        strlist_add(&adm.ov.removed, url);
    strlist_del(&adm.ov.drained, url);
    rc = commit(&saved, err, errlen);
out:
    pthread_mutex_unlock(&adm.lock);
    if (rc == 0) {
        fleet_drain(url, true); /* no new requests; the rebuild then lets it go */
        RT_INFO("admin: removed server %s", url);
        changed();
    }
    rt_free(url);
    return rc;
}

int rt_admin_drain(const char *url_in, bool drained, char *err, size_t errlen)
{
    char *url = NULL;
    int rc = norm_url(url_in ? url_in : "", &url, err, errlen);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&adm.lock);
    if (!effective(url)) {
        snprintf(err, errlen, "no configured server has the url %s", url);
        rc = RT_ADMIN_ENOTFOUND;
        goto out;
    }
    struct overlay saved;
    overlay_copy(&saved, &adm.ov);
    bool change = drained ? strlist_add(&adm.ov.drained, url) : strlist_del(&adm.ov.drained, url);
    if (change) {
        rc = commit(&saved, err, errlen);
    } else {
        overlay_free(&saved);
    }
out:
    pthread_mutex_unlock(&adm.lock);
    if (rc == 0) {
        fleet_drain(url, drained);
        RT_INFO("admin: %s server %s", drained ? "drained" : "undrained", url);
        changed();
    }
    rt_free(url);
    return rc;
}

/* ---- views -------------------------------------------------------------------------------- */

static json_t *listed(const struct rt_server_conf *s, const char *source)
{
    json_t *o = server_to_json(s, false);
    json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "drained", json_boolean(strlist_find(&adm.ov.drained, s->url) >= 0));
    struct rt_backend *b = rt_fleet_find(s->url);
    json_object_set_new(o, "in_fleet", json_boolean(b != NULL));
    if (b) {
        json_object_set_new(o, "healthy", json_boolean(rt_backend_is_healthy(b)));
        json_object_set_new(o, "inflight", json_integer(atomic_load(&b->inflight)));
        json_object_set_new(o, "circuit",
                            json_string(rt_status_json_circuit_name(atomic_load(&b->circuit))));
        json_object_set_new(o, "draining", json_boolean(atomic_load(&b->draining)));
        rt_backend_unref(b);
    } else {
        json_object_set_new(o, "healthy", json_null());
        json_object_set_new(o, "inflight", json_integer(0));
        json_object_set_new(o, "circuit", json_null());
        json_object_set_new(o, "draining", json_boolean(false));
    }
    return o;
}

char *rt_admin_servers_json(void)
{
    json_t *root = json_object();
    json_t *list = json_array();
    pthread_mutex_lock(&adm.lock);
    for (size_t i = 0; i < adm.nbase; i++)
        if (strlist_find(&adm.ov.removed, adm.base[i].url) < 0)
            json_array_append_new(list, listed(&adm.base[i], adm.base_from_cli ? "flags" :
                                                                                  "file"));
    for (size_t i = 0; i < adm.ov.nadded; i++)
        if (!base_find(adm.ov.added[i].url))
            json_array_append_new(list, listed(&adm.ov.added[i], "admin"));
    json_t *rem = json_array();
    for (size_t i = 0; i < adm.ov.removed.n; i++)
        json_array_append_new(rem, json_string(adm.ov.removed.v[i]));
    json_object_set_new(root, "servers", list);
    json_object_set_new(root, "removed", rem);
    json_object_set_new(root, "state_file",
                        adm.state_file ? json_string(adm.state_file) : json_null());
    pthread_mutex_unlock(&adm.lock);
    char *s = dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

char *rt_admin_state_json(void)
{
    pthread_mutex_lock(&adm.lock);
    json_t *root = overlay_to_json(&adm.ov);
    pthread_mutex_unlock(&adm.lock);
    char *s = dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static const char json_ct[] = "Content-Type: application/json\r\n";

static void respond_owned(struct rt_http_exchange *ex, int status, char *body)
{
    size_t n = strlen(body);
    body = rt_realloc(body, n + 2);
    body[n++] = '\n';
    rt_http_respond(ex, status, json_ct, body, n);
    rt_free(body);
}

static void respond_obj(struct rt_http_exchange *ex, int status, json_t *o)
{
    respond_owned(ex, status, dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
    json_decref(o);
}

static void fail(struct rt_http_exchange *ex, int rc, const char *msg)
{
    switch (rc) {
    case RT_ADMIN_ENOTFOUND:
        rt_http_respond_error(ex, 404, "invalid_request_error", "server_not_found", msg, NULL);
        break;
    case RT_ADMIN_ECONFLICT:
        rt_http_respond_error(ex, 409, "invalid_request_error", "server_exists", msg, NULL);
        break;
    case RT_ADMIN_EIO:
        rt_http_respond_error(ex, 500, "server_error", "state_file_error", msg, NULL);
        break;
    default:
        rt_http_respond_error(ex, 400, "invalid_request_error", "invalid_value", msg, NULL);
        break;
    }
}

/* Constant-time in the bytes compared, so the token cannot be guessed byte by byte. */
static bool same_secret(struct rt_str a, const char *b)
{
    size_t blen = strlen(b), n = a.len > blen ? a.len : blen;
    unsigned char d = a.len != blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < a.len ? (unsigned char)a.ptr[i] : 0;
        unsigned char y = i < blen ? (unsigned char)b[i] : 0;
        d |= (unsigned char)(x ^ y);
    }
    return d == 0;
}

static bool authorized(const struct rt_http_exchange *ex)
{
    pthread_mutex_lock(&adm.lock);
    const char *t = adm.token_override ? adm.token_override : adm.cfg_token;
    char *token = t && t[0] ? rt_strdup(t) : NULL;
    pthread_mutex_unlock(&adm.lock);
    if (!token)
        return true;
    bool ok = false;
    const struct rt_http_header *h = rt_http_find_header(ex->req.headers, ex->req.num_headers,
                                                         RT_STR_LIT("Authorization"));
    if (h && h->value.len > 7 && strncasecmp(h->value.ptr, "Bearer ", 7) == 0) {
        struct rt_str v = rt_str_make(h->value.ptr + 7, h->value.len - 7);
        while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
            v.ptr++;
            v.len--;
        }
        ok = same_secret(v, token);
    }
    rt_free(token);
    return ok;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The percent-decoded value of query parameter <name> of <target>, in *<out> (the caller's):
 * 1 when found, 0 when absent, -1 when badly encoded. */
static int query_param(struct rt_str target, const char *name, char **out)
{
    const char *q = memchr(target.ptr, '?', target.len);
    if (!q)
        return 0;
    const char *end = target.ptr + target.len;
    size_t nlen = strlen(name);
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            char *d = rt_malloc((size_t)(e - v) + 1);
            size_t n = 0;
            for (const char *s = v; s < e; s++) {
                if (*s != '%') {
                    d[n++] = *s;
                    continue;
                }
                int hi = e - s >= 3 ? hexval(s[1]) : -1, lo = e - s >= 3 ? hexval(s[2]) : -1;
                if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                    rt_free(d);
                    return -1;
                }
                d[n++] = (char)(hi * 16 + lo);
                s += 2;
            }
            d[n] = '\0';
            *out = d;
            return 1;
        }
        p = e + 1;
    }
    return 0;
}

/* The "url" member of a JSON body, copied into *<out>. */
static int body_url(const struct rt_http_exchange *ex, char **out, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(ex->body.ptr ? ex->body.ptr : "", ex->body.len, 0, &je);
    if (!root) {
        snprintf(err, errlen, "the body must be JSON such as {\"url\": \"http://10.0.0.7:8000\"}: "
                              "%s", je.text);
        return RT_ADMIN_EINVAL;
    }
    const json_t *u = json_is_object(root) ? json_object_get(root, "url") : NULL;
    int rc = 0;
    if (!json_is_string(u) || strlen(json_string_value(u)) != json_string_length(u)) {
        snprintf(err, errlen, "the body must be a JSON object with \"url\": a server URL string");
        rc = RT_ADMIN_EINVAL;
    } else {
        *out = rt_strdup(json_string_value(u));
    }
    json_decref(root);
    return rc;
}

static void do_add(struct rt_http_exchange *ex)
{
    char err[600];
    struct rt_server_conf s;
    int rc = rt_admin_server_parse(ex->body.ptr ? ex->body.ptr : "", ex->body.len, &s, err,
                                   sizeof err);
    if (rc == 0)
        rc = rt_admin_add(&s, err, sizeof err);
    if (rc != 0) {
        fail(ex, rc, err);
        rt_server_conf_clear(&s);
        return;
    }
    json_t *o = json_object();
    pthread_mutex_lock(&adm.lock);
    const struct rt_server_conf *f = base_find(s.url);
    json_object_set_new(o, "added", server_to_json(f ? f : &s, false));
    json_object_set_new(o, "source", json_string(f ? "file" : "admin"));
    pthread_mutex_unlock(&adm.lock);
    if (f)
        json_object_set_new(o, "note", json_string("the configuration file lists this server: "
                                                   "its removal was undone and the file's entry "
                                                   "is used"));
    rt_server_conf_clear(&s);
    respond_obj(ex, 201, o);
}

static void do_url_op(struct rt_http_exchange *ex, int op)
{
    char err[600];
    char *url = NULL;
    int rc = 0;
    if (op == 0) { /* DELETE: ?url=..., or a JSON body */
        int q = query_param(ex->req.target, "url", &url);
        if (q < 0) {
            snprintf(err, sizeof err, "the url query parameter is badly percent-encoded");
            rc = RT_ADMIN_EINVAL;
        } else if (q == 0 && ex->body.len == 0) {
            snprintf(err, sizeof err, "say which server: DELETE /admin/servers?url=<server url> "
                                      "(percent-encoded)");
            rc = RT_ADMIN_EINVAL;
        } else if (q == 0) {
            rc = body_url(ex, &url, err, sizeof err);
        }
    } else {
        rc = body_url(ex, &url, err, sizeof err);
    }
    if (rc == 0)
        rc = op == 0 ? rt_admin_remove(url, err, sizeof err)
                     : rt_admin_drain(url, op == 1, err, sizeof err);
    if (rc != 0) {
        fail(ex, rc, err);
        rt_free(url);
        return;
    }
    char *norm = NULL;
    norm_url(url, &norm, err, sizeof err);
    json_t *o = json_object();
    json_object_set_new(o, op == 0 ? "removed" : op == 1 ? "drained" : "undrained",
                        json_string(norm));
    rt_free(norm);
    rt_free(url);
    respond_obj(ex, 200, o);
}

static void serve(struct rt_http_exchange *ex)
{
    struct rt_str path = ex->req.path, m = ex->req.method;
    bool get = rt_str_eq(m, RT_STR_LIT("GET")) || rt_str_eq(m, RT_STR_LIT("HEAD"));
    bool post = rt_str_eq(m, RT_STR_LIT("POST"));
    bool del = rt_str_eq(m, RT_STR_LIT("DELETE"));
    if (!authorized(ex)) {
        rt_http_respond_error(ex, 401, "authentication_error", "invalid_admin_token",
                              "the admin API needs the header Authorization: Bearer <admin "
                              "token>",
                              "WWW-Authenticate: Bearer realm=\"vllm-router admin\"\r\n");
        return;
    }
    while (path.len > 1 && path.ptr[path.len - 1] == '/')
        path.len--;
    if (rt_str_eq(path, RT_STR_LIT("/admin/servers"))) {
        if (get)
            respond_owned(ex, 200, rt_admin_servers_json());
        else if (post)
            do_add(ex);
        else if (del)
            do_url_op(ex, 0);
        else
            rt_http_respond_error(ex, 405, "invalid_request_error", "method_not_allowed",
                                  "/admin/servers accepts GET, POST and DELETE",
                                  "Allow: GET, HEAD, POST, DELETE\r\n");
        return;
    }
    bool drain = rt_str_eq(path, RT_STR_LIT("/admin/servers/drain"));
    bool undrain = rt_str_eq(path, RT_STR_LIT("/admin/servers/undrain"));
    bool reload = rt_str_eq(path, RT_STR_LIT("/admin/reload"));
    if (!drain && !undrain && !reload) {
        char msg[600];
        snprintf(msg, sizeof msg, "no admin endpoint %.*s; see GET /admin/servers",
                 (int)(path.len > 400 ? 400 : path.len), path.ptr);
        rt_http_respond_error(ex, 404, "invalid_request_error", "not_found", msg, NULL);
        return;
    }
    if (!post) {
        rt_http_respond_error(ex, 405, "invalid_request_error", "method_not_allowed",
                              "this admin endpoint only accepts POST", "Allow: POST\r\n");
        return;
    }
    if (reload) {
        atomic_store(&adm.reload_requested, true);
        RT_INFO("admin: reload requested");
        changed();
        respond_owned(ex, 202, rt_strdup("{\"status\": \"reload requested\"}"));
        return;
    }
    do_url_op(ex, drain ? 1 : 2);
}

static bool is_admin_path(struct rt_str path)
{
    return rt_str_eq(path, RT_STR_LIT("/admin")) ||
           rt_str_starts_with(path, RT_STR_LIT("/admin/"));
}

bool rt_admin_route(struct rt_http_exchange *ex)
{
    if (!is_admin_path(ex->req.path) || atomic_load(&adm.listening))
        return false;
    serve(ex);
    return true;
}

static void on_admin_request(struct rt_http_exchange *ex, void *ctx)
{
    (void)ctx;
    if (is_admin_path(ex->req.path)) {
        serve(ex);
        return;
    }
    rt_http_respond_error(ex, 404, "invalid_request_error", "not_found",
                          "this listener serves only the admin API (/admin/...)", NULL);
}

int rt_admin_listen(uv_loop_t *loop, const char *host, int port, char *err, size_t errlen)
{
    if (adm.srv) {
        snprintf(err, errlen, "the admin listener is already running");
        return -1;
    }
    const struct rt_http_server_conf conf = {
        .max_head_bytes = 16384,
        .max_body_bytes = 1u << 20,
        .head_timeout_ms = 10000,
        .body_timeout_ms = 30000,
        .keepalive_timeout_ms = 30000,
        .max_connections = 64,
        .output_high_water = 1u << 20,
    };
    if (rt_http_server_start(loop, host && host[0] ? host : "127.0.0.1", port, false, &conf,
                             on_admin_request, NULL, &adm.srv, err, errlen) != 0) {
        adm.srv = NULL;
        return -1;
    }
    atomic_store(&adm.listening, true);
    return 0;
}

int rt_admin_listen_port(void)
{
    return adm.srv ? rt_http_server_port(adm.srv) : 0;
}

void rt_admin_listen_close(void)
{
    if (!adm.srv)
        return;
    atomic_store(&adm.listening, false);
    rt_http_server_close(adm.srv);
    adm.srv = NULL;
}
