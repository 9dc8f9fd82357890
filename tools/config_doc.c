/* config-doc: prints docs/configuration.md as the key table in src/config_keys.c describes it.
 * Usage: build/config-doc > docs/configuration.md */
#include <stdio.h>

#include "alloc.h"
#include "config.h"

int main(void)
{
    char *md = rt_config_doc_markdown();
    int rc = fputs(md, stdout) == EOF ? 1 : 0;
    rt_free(md);
    return rc;
}
