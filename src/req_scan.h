/* Reading what routing needs from a request body without building a tree or copying the body:
 * a strict one-pass JSON validator that picks out a few top-level fields, and a multipart
 * form-data scanner for the `model` field of audio uploads. */
#ifndef RT_REQ_SCAN_H
#define RT_REQ_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "str.h"

#define RT_SCAN_MAX_DEPTH 128
#define RT_SCAN_STR_CAP   256 /* longest decoded value we keep for model/user */

/* Top-level fields of a JSON request body. String values are decoded (escapes resolved) into
 * the struct's own storage, so they stay valid as long as the struct. */
struct rt_json_fields {
    bool is_object;    /* the document is an object */
    bool has_model;
    bool has_stream;
    bool stream;       /* "stream": true */
    bool has_user;
    bool include_usage; /* "stream_options": {"include_usage": true} */
    struct rt_str model; /* points into model_buf */
    struct rt_str user;  /* points into user_buf */
    char model_buf[RT_SCAN_STR_CAP];
    char user_buf[RT_SCAN_STR_CAP];
};

/* Validates the JSON document in <p>[0, <n>) (RFC 8259, UTF-8 checked, depth-limited) and
 * fills <out>. Returns 0, or -1 with *<err> set to a static description ("unexpected end of
 * input", ...) and *<err_off> to the byte offset of the problem. A "model" that is not a
 * string, or longer than RT_SCAN_STR_CAP - 1 bytes, is an error too. */
int rt_json_scan(const char *p, size_t n, struct rt_json_fields *out, const char **err,
                 size_t *err_off);

/* Finds the value of form field <name> in a multipart/form-data body whose Content-Type
 * header value is <content_type>. Returns 0 with *<value> a slice of <body>, 1 when the field
 * is absent, -1 when the body or the content type is malformed. */
int rt_multipart_field(struct rt_str content_type, struct rt_str body, struct rt_str name,
                       struct rt_str *value);

#endif
