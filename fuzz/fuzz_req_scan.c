/* libFuzzer target for req_scan.c: the JSON validator/field picker and the multipart lookup. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "req_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exactly sized copy, so reading past the end is caught. */
    char *p = malloc(size ? size : 1);
    if (size)
        memcpy(p, data, size);
    struct rt_json_fields f;
    const char *err;
    size_t off;
    int r = rt_json_scan(p, size, &f, &err, &off);
    if (r == 0) {
        if (f.has_model && (f.model.len >= RT_SCAN_STR_CAP || f.model.ptr != f.model_buf))
            abort();
    } else if (!err || off > size) {
        abort();
    }
    /* The same bytes as a multipart body with a fixed boundary. */
    struct rt_str v;
    int m = rt_multipart_field(RT_STR_LIT("multipart/form-data; boundary=XyZ"),
                               rt_str_make(p, size), RT_STR_LIT("model"), &v);
    if (m == 0 && (v.ptr < p || v.ptr + v.len > p + size))
        abort();
    free(p);
    return 0;
}
