/* test_abi_import.c - the plugin import negotiation (bocpy/abi_header.h)
 * against fake tables: no Python needed.
 *
 * bocpy_import_abi() in bocpy/bocpy.h finds the capsule, then calls exactly
 * these checks (name, version, size, flags) and raises ImportError with the
 * message they produce; tests/python/test_abi.py covers that Python part.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bocpy/abi_header.h"

/* A table as a core would publish it: the header, then entry slots. */
typedef struct fake_table {
  bocpy_abi_header h;
  void (*entries[BOCPY_ABI_ENTRY_COUNT + 8])(void);
} fake_table_t;

static fake_table_t make_table(uint32_t major, uint32_t minor, size_t size) {
  fake_table_t t;
  memset(&t, 0, sizeof(t));
  t.h.major = major;
  t.h.minor = minor;
  t.h.struct_size = (uint32_t)size;
  t.h.flags = 0;
  t.h.version = "bocpy 9.9.9 (fake)";
  return t;
}

static void assert_contains(const char *text, const char *part) {
  if (strstr(text, part) == NULL) {
    fail_msg("\"%s\" does not contain \"%s\"", text, part);
  }
}

static void test_current_table_is_accepted(void **state) {
  (void)state;
  char err[512] = "";
  fake_table_t t = make_table(BOCPY_ABI_MAJOR, BOCPY_ABI_MINOR,
                              bocpy_abi_size_for_minor(BOCPY_ABI_MINOR));
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, BOCPY_TARGET_MINOR,
                                   err, sizeof(err)),
                   BOCPY_ABI_OK);
  assert_int_equal(bocpy_abi_check_name(BOCPY_ABI_CAPSULE_NAME, err,
                                        sizeof(err)),
                   BOCPY_ABI_OK);
  assert_int_equal(bocpy_abi_check_flags(&t.h, 0, err, sizeof(err)),
                   BOCPY_ABI_OK);
}

static void test_newer_core_is_accepted(void **state) {
  (void)state;
  /* A newer minor with more entries: an older plugin ignores the rest. */
  char err[512] = "";
  fake_table_t t = make_table(BOCPY_ABI_MAJOR, BOCPY_ABI_MINOR + 3,
                              bocpy_abi_size_for_minor(BOCPY_ABI_MINOR) +
                                  5 * BOCPY_ABI_ENTRY_SIZE);
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, 0, err,
                                   sizeof(err)),
                   BOCPY_ABI_OK);
  assert_true(bocpy_abi_has_index(&t.h, BOCPY_ABI_ENTRY_COUNT + 4));
  assert_false(bocpy_abi_has_index(&t.h, BOCPY_ABI_ENTRY_COUNT + 5));
}

static void test_major_mismatch_names_both_versions(void **state) {
  (void)state;
  char err[512] = "";
  fake_table_t t = make_table(BOCPY_ABI_MAJOR + 1, 0, 4096);
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, 0, err,
                                   sizeof(err)),
                   BOCPY_ABI_EMAJOR);
  char plugin[32], core[32];
  snprintf(plugin, sizeof(plugin), "ABI %d.0", BOCPY_ABI_MAJOR);
  snprintf(core, sizeof(core), "ABI %d.0", BOCPY_ABI_MAJOR + 1);
  assert_contains(err, "mismatch");
  assert_contains(err, plugin);
  assert_contains(err, core);
  assert_contains(err, "bocpy 9.9.9 (fake)");
  assert_contains(err, "rebuild");
  /* An older major is refused just the same. */
  t.h.major = BOCPY_ABI_MAJOR - 1;
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, 0, err,
                                   sizeof(err)),
                   BOCPY_ABI_EMAJOR);
}

static void test_minor_too_low(void **state) {
  (void)state;
  char err[512] = "";
  fake_table_t t = make_table(BOCPY_ABI_MAJOR, 0,
                              bocpy_abi_size_for_minor(0));
  int need = 3; /* a plugin that declared BOCPY_TARGET_MINOR 3 */
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, need, err,
                                   sizeof(err)),
                   BOCPY_ABI_EMINOR);
  char plugin[32], core[32];
  snprintf(plugin, sizeof(plugin), "ABI %d.3 or newer", BOCPY_ABI_MAJOR);
  snprintf(core, sizeof(core), "ABI %d.0", BOCPY_ABI_MAJOR);
  assert_contains(err, "too old");
  assert_contains(err, plugin);
  assert_contains(err, core);
  assert_contains(err, "upgrade bocpy");
  /* A negative minimum is nonsense, not a wildcard. */
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, -1, err,
                                   sizeof(err)),
                   BOCPY_ABI_EMINOR);
}

static void test_smaller_struct_from_older_core(void **state) {
  (void)state;
  char err[512] = "";
  /* An older core: fewer entries than these headers declare.  It passes as
   * long as it holds what its own minor promises; entries past its
   * struct_size read as missing. */
  size_t full = bocpy_abi_size_for_minor(BOCPY_ABI_MINOR);
  size_t older = sizeof(bocpy_abi_header) + 4 * BOCPY_ABI_ENTRY_SIZE;
  fake_table_t t = make_table(BOCPY_ABI_MAJOR, 0, full);
  assert_true(bocpy_abi_has_index(&t.h, BOCPY_ABI_ENTRY_COUNT - 1));
  assert_false(bocpy_abi_has_index(&t.h, BOCPY_ABI_ENTRY_COUNT));
  t.h.struct_size = (uint32_t)older;
  assert_true(bocpy_abi_has_index(&t.h, 3));
  assert_false(bocpy_abi_has_index(&t.h, 4));
  /* ...but a table smaller than its own minor's promise is refused. */
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, 0, err,
                                   sizeof(err)),
                   BOCPY_ABI_ESIZE);
  assert_contains(err, "corrupt");
  assert_contains(err, "struct_size");
  /* One byte short of what minor 0 itself promises. */
  t.h.struct_size = (uint32_t)(bocpy_abi_size_for_minor(0) - 1);
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, 0, err,
                                   sizeof(err)),
                   BOCPY_ABI_ESIZE);
  t.h.struct_size = 0;
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, 0, err,
                                   sizeof(err)),
                   BOCPY_ABI_ESIZE);
}

static void test_entry_counts_grow_with_minor(void **state) {
  (void)state;
  assert_int_equal(bocpy_abi_entries_for_minor(-1), 0);
  assert_int_equal(bocpy_abi_entries_for_minor(BOCPY_ABI_MINOR),
                   BOCPY_ABI_ENTRY_COUNT);
  assert_int_equal(bocpy_abi_entries_for_minor(BOCPY_ABI_MINOR + 100),
                   BOCPY_ABI_ENTRY_COUNT);
  for (int m = 1; m <= BOCPY_ABI_MINOR; m++) {
    assert_true(bocpy_abi_entries_for_minor(m) >=
                bocpy_abi_entries_for_minor(m - 1));
  }
  assert_true(bocpy_abi_entries_for_minor(0) > 0);
}

static void test_wrong_capsule_name(void **state) {
  (void)state;
  char err[512] = "";
  assert_int_equal(bocpy_abi_check_name("numpy.core._ARRAY_API", err,
                                        sizeof(err)),
                   BOCPY_ABI_ENAME);
  assert_contains(err, BOCPY_ABI_CAPSULE_NAME);
  assert_contains(err, "numpy.core._ARRAY_API");
  assert_int_equal(bocpy_abi_check_name(NULL, err, sizeof(err)),
                   BOCPY_ABI_ENAME);
  assert_contains(err, "(null)");
  /* a prefix of the right name is still wrong */
  assert_int_equal(bocpy_abi_check_name("bocpy._core", err, sizeof(err)),
                   BOCPY_ABI_ENAME);
}

static void test_null_table(void **state) {
  (void)state;
  char err[512] = "";
  assert_int_equal(bocpy_abi_check(NULL, BOCPY_ABI_MAJOR, 0, err,
                                   sizeof(err)),
                   BOCPY_ABI_ENULL);
  assert_true(strlen(err) > 0);
}

static void test_free_threaded_mismatch(void **state) {
  (void)state;
  char err[512] = "";
  fake_table_t t = make_table(BOCPY_ABI_MAJOR, BOCPY_ABI_MINOR,
                              bocpy_abi_size_for_minor(BOCPY_ABI_MINOR));
  t.h.flags = BOCPY_ABI_FLAG_FREE_THREADED;
  assert_int_equal(bocpy_abi_check_flags(&t.h, 0, err, sizeof(err)),
                   BOCPY_ABI_EFLAGS);
  assert_contains(err, "free-threaded");
  /* Debug builds are reported but not refused. */
  t.h.flags = BOCPY_ABI_FLAG_DEBUG;
  assert_int_equal(bocpy_abi_check_flags(&t.h, 0, err, sizeof(err)),
                   BOCPY_ABI_OK);
}

static void test_short_error_buffer_is_terminated(void **state) {
  (void)state;
  char err[16];
  memset(err, 'x', sizeof(err));
  fake_table_t t = make_table(BOCPY_ABI_MAJOR + 7, 0, 4096);
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, 0, err,
                                   sizeof(err)),
                   BOCPY_ABI_EMAJOR);
  assert_true(memchr(err, '\0', sizeof(err)) != NULL);
  /* errlen 0 writes nothing and still reports the error */
  assert_int_equal(bocpy_abi_check(&t.h, BOCPY_ABI_MAJOR, 0, NULL, 0),
                   BOCPY_ABI_EMAJOR);
}

static void test_constants(void **state) {
  (void)state;
  assert_int_equal(BOCPY_ABI, BOCPY_ABI_MAJOR);
  assert_int_equal(BOCPY_NO_OWNER, -2);
  assert_string_equal(BOCPY_ABI_CAPSULE_NAME,
                      BOCPY_ABI_CORE_MODULE "." BOCPY_ABI_CAPSULE_ATTR);
  assert_int_equal(BOCPY_TARGET_MINOR, 0);
  assert_int_equal(bocpy_abi_size_for_minor(BOCPY_ABI_MINOR),
                   sizeof(bocpy_abi_header) +
                       BOCPY_ABI_ENTRY_COUNT * BOCPY_ABI_ENTRY_SIZE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_current_table_is_accepted),
      cmocka_unit_test(test_newer_core_is_accepted),
      cmocka_unit_test(test_major_mismatch_names_both_versions),
      cmocka_unit_test(test_minor_too_low),
      cmocka_unit_test(test_smaller_struct_from_older_core),
      cmocka_unit_test(test_entry_counts_grow_with_minor),
      cmocka_unit_test(test_wrong_capsule_name),
      cmocka_unit_test(test_null_table),
      cmocka_unit_test(test_free_threaded_mismatch),
      cmocka_unit_test(test_short_error_buffer_is_terminated),
      cmocka_unit_test(test_constants),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
