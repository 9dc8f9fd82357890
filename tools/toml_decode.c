/* toml-decode: reads TOML on stdin and prints it as toml-test tagged JSON, or `line:col: message`.
 */
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "toml.h"

/* Documents larger than this are refused rather than read without bound. */
#define MAX_INPUT (64u << 20)

static void put_json_string(struct rt_buf *o, const char *s, size_t n)
{
    rt_buf_printf(o, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            rt_buf_printf(o, "\\%c", c);
        else if (c == '\n')
            rt_buf_printf(o, "\\n");
        else if (c == '\t')
            rt_buf_printf(o, "\\t");
        else if (c < 0x20 || c == 0x7f)
            rt_buf_printf(o, "\\u%04x", c);
        else
            (void)rt_buf_append(o, s + i, 1, SIZE_MAX);
    }
    rt_buf_printf(o, "\"");
}

/* The shortest "%.*g" form that reads back as the same double. */
static void put_float(struct rt_buf *o, double f)
{
    if (isnan(f)) {
        rt_buf_printf(o, "nan");
        return;
    }
    if (isinf(f)) {
        rt_buf_printf(o, f < 0 ? "-inf" : "inf");
        return;
    }
    char b[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(b, sizeof(b), "%.*g", prec, f);
        if (strtod(b, NULL) == f)
            break;
    }
    rt_buf_printf(o, "%s", b);
}

static void put_value(struct rt_buf *o, const struct rt_toml_value *v)
{
    switch (v->type) {
    case RT_TOML_TABLE:
        rt_buf_printf(o, "{");
        for (size_t i = 0; i < v->u.tab.len; i++) {
            if (i)
                rt_buf_printf(o, ",");
            put_json_string(o, v->u.tab.items[i].key, v->u.tab.items[i].key_len);
            rt_buf_printf(o, ":");
            put_value(o, v->u.tab.items[i].val);
        }
        rt_buf_printf(o, "}");
        return;
    case RT_TOML_ARRAY:
        rt_buf_printf(o, "[");
        for (size_t i = 0; i < v->u.arr.len; i++) {
            if (i)
                rt_buf_printf(o, ",");
            put_value(o, v->u.arr.items[i]);
        }
        rt_buf_printf(o, "]");
        return;
    default:
        break;
    }
    rt_buf_printf(o, "{\"type\":\"%s\",\"value\":", rt_toml_type_name(v->type));
    switch (v->type) {
    case RT_TOML_INTEGER:
        rt_buf_printf(o, "\"%" PRId64 "\"", v->u.i);
        break;
    case RT_TOML_FLOAT:
        rt_buf_printf(o, "\"");
        put_float(o, v->u.f);
        rt_buf_printf(o, "\"");
        break;
    case RT_TOML_BOOL:
        rt_buf_printf(o, "\"%s\"", v->u.b ? "true" : "false");
        break;
    default:
        put_json_string(o, v->u.str.ptr, v->u.str.len);
        break;
    }
    rt_buf_printf(o, "}");
}

int main(void)
{
    struct rt_buf in = {0}, out = {0};
    int rc = 1;
    for (;;) {
        if (rt_buf_reserve(&in, 65536, MAX_INPUT) < 0) {
            fprintf(stderr, "0:0: input is larger than %u bytes\n", MAX_INPUT);
            goto out;
        }
        size_t n = fread(in.base + in.len, 1, in.cap - in.len, stdin);
        if (n == 0)
            break;
        in.len += n;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "0:0: cannot read standard input\n");
        goto out;
    }
    struct rt_toml_value *root = NULL;
    struct rt_toml_error err;
    if (rt_toml_parse(rt_buf_data(&in), rt_buf_size(&in), &root, &err) < 0) {
        fprintf(stderr, "%u:%u: %s\n", err.pos.line, err.pos.col, err.msg);
        goto out;
    }
    put_value(&out, root);
    rt_buf_printf(&out, "\n");
    fwrite(rt_buf_data(&out), 1, rt_buf_size(&out), stdout);
    rt_toml_free(root);
    rc = 0;
out:
    rt_buf_free(&in);
    rt_buf_free(&out);
    return rc;
}
