/* libFuzzer target for the TOML parser: any bytes must parse or fail with a message, never crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rt_toml_value *root = NULL;
    struct rt_toml_error err;
    if (rt_toml_parse((const char *)data, size, &root, &err) == 0) {
        /* Touch the tree so lookups run on whatever shape the input made. */
        (void)rt_toml_get(root, "server");
        rt_toml_free(root);
    } else if (root != NULL || err.msg[0] == '\0' || err.pos.line == 0 || err.pos.col == 0) {
        __builtin_trap();
    }
    return 0;
}
