/* libFuzzer target: arbitrary bytes through the TOML parser and the config loader; any input
 * must give a config or a list of messages, never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rt_diag d = {0};
    struct rt_config *c = NULL;
    if (rt_config_load_string((const char *)data, size, "fuzz.toml", &c, &d) == 0) {
        struct rt_config *copy = rt_config_clone(c);
        rt_config_free(copy);
        rt_config_free(c);
    } else {
        char line[1400];
        for (size_t i = 0; i < d.len; i++)
            rt_diag_format(&d, i, line, sizeof line);
    }
    rt_diag_free(&d);
    return 0;
}
