/* ocl_device.c - device discovery and selection (see ocl_device.h). */
#include "ocl_device.h"

#include "ocl_args.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define OCL_MAX_PLATFORMS 16
#define OCL_MAX_DEVICES 64

/* Every device of every platform, in a stable order.  Returns the count (0
 * when there is no runtime or no device; nothing raised). */
static int list_devices(const clx_api *cl, ocl_dev_ref *out, int max) {
  cl_platform_id plats[OCL_MAX_PLATFORMS];
  cl_uint nplat = 0;
  if (cl == NULL ||
      cl->clGetPlatformIDs(OCL_MAX_PLATFORMS, plats, &nplat) != CL_SUCCESS) {
    return 0;
  }
  if (nplat > OCL_MAX_PLATFORMS) {
    nplat = OCL_MAX_PLATFORMS;
  }
  int n = 0;
  for (cl_uint p = 0; p < nplat && n < max; p++) {
    cl_device_id devs[OCL_MAX_DEVICES];
    cl_uint ndev = 0;
    if (cl->clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, OCL_MAX_DEVICES,
                           devs, &ndev) != CL_SUCCESS) {
      continue;
    }
    if (ndev > OCL_MAX_DEVICES) {
      ndev = OCL_MAX_DEVICES;
    }
    for (cl_uint d = 0; d < ndev && n < max; d++) {
      out[n].platform = plats[p];
      out[n].device = devs[d];
      n++;
    }
  }
  return n;
}

PyObject *ocl_device_str(const clx_api *cl, cl_device_id dev,
                         cl_device_info what) {
  char buf[512];
  size_t len = 0;
  if (cl->clGetDeviceInfo(dev, what, sizeof(buf) - 1, buf, &len) !=
      CL_SUCCESS) {
    len = 0;
  }
  if (len >= sizeof(buf)) {
    len = sizeof(buf) - 1;
  }
  buf[len] = '\0';
  /* strip the trailing NUL and blanks some drivers add */
  size_t n = strlen(buf);
  while (n > 0 && isspace((unsigned char)buf[n - 1])) {
    buf[--n] = '\0';
  }
  return PyUnicode_DecodeUTF8(buf, (Py_ssize_t)n, "replace");
}

cl_ulong ocl_device_ulong(const clx_api *cl, cl_device_id dev,
                          cl_device_info what) {
  cl_ulong v = 0;
  if (cl->clGetDeviceInfo(dev, what, sizeof(v), &v, NULL) != CL_SUCCESS) {
    return 0;
  }
  return v;
}

int ocl_device_fp64(const clx_api *cl, cl_device_id dev) {
  cl_device_fp_config cfg = 0;
  if (cl->clGetDeviceInfo(dev, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof(cfg), &cfg,
                          NULL) != CL_SUCCESS) {
    return 0;
  }
  return cfg != 0;
}

PyObject *ocl_device_info(const clx_api *cl, const ocl_dev_ref *ref,
                          int index) {
  char pbuf[256];
  size_t plen = 0;
  if (cl->clGetPlatformInfo(ref->platform, CL_PLATFORM_NAME,
                            sizeof(pbuf) - 1, pbuf, &plen) != CL_SUCCESS) {
    plen = 0;
  }
  if (plen >= sizeof(pbuf)) {
    plen = sizeof(pbuf) - 1;
  }
  pbuf[plen] = '\0';
  cl_device_type type = 0;
  if (cl->clGetDeviceInfo(ref->device, CL_DEVICE_TYPE, sizeof(type), &type,
                          NULL) != CL_SUCCESS) {
    type = 0;
  }
  const char *tname = (type & CL_DEVICE_TYPE_GPU)           ? "gpu"
                      : (type & CL_DEVICE_TYPE_CPU)         ? "cpu"
                      : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator"
                                                            : "other";
  cl_uint units = 0;
  if (cl->clGetDeviceInfo(ref->device, CL_DEVICE_MAX_COMPUTE_UNITS,
                          sizeof(units), &units, NULL) != CL_SUCCESS) {
    units = 0;
  }
  size_t wg = 0;
  if (cl->clGetDeviceInfo(ref->device, CL_DEVICE_MAX_WORK_GROUP_SIZE,
                          sizeof(wg), &wg, NULL) != CL_SUCCESS) {
    wg = 0;
  }
  return Py_BuildValue(
      "{s:i,s:s,s:N,s:N,s:s,s:K,s:K,s:I,s:n,s:O,s:N,s:N}", "index", index,
      "platform", pbuf, "name", ocl_device_str(cl, ref->device, CL_DEVICE_NAME),
      "vendor", ocl_device_str(cl, ref->device, CL_DEVICE_VENDOR), "type", tname,
      "memory",
      (unsigned long long)ocl_device_ulong(cl, ref->device,
                                       CL_DEVICE_GLOBAL_MEM_SIZE),
      "max_alloc",
      (unsigned long long)ocl_device_ulong(cl, ref->device,
                                       CL_DEVICE_MAX_MEM_ALLOC_SIZE),
      "compute_units", (unsigned)units, "max_work_group_size", (Py_ssize_t)wg,
      "fp64", ocl_device_fp64(cl, ref->device) ? Py_True : Py_False, "version",
      ocl_device_str(cl, ref->device, CL_DEVICE_VERSION), "driver",
      ocl_device_str(cl, ref->device, CL_DRIVER_VERSION));
}

PyObject *ocl_devices_list(void) {
  const clx_api *cl = clx_get();
  ocl_dev_ref refs[OCL_MAX_DEVICES];
  int n = list_devices(cl, refs, OCL_MAX_DEVICES);
  PyObject *list = PyList_New(0);
  if (list == NULL) {
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    PyObject *d = ocl_device_info(cl, &refs[i], i);
    if (d == NULL || PyList_Append(list, d) < 0) {
      Py_XDECREF(d);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(d);
  }
  return list;
}

/* Case-insensitive: does hay contain needle? */
static int contains_ci(PyObject *hay, PyObject *needle_lower) {
  if (hay == NULL || !PyUnicode_Check(hay)) {
    return 0;
  }
  PyObject *low = PyObject_CallMethod(hay, "lower", NULL);
  if (low == NULL) {
    PyErr_Clear();
    return 0;
  }
  int r = PyUnicode_Contains(low, needle_lower);
  Py_DECREF(low);
  if (r < 0) {
    PyErr_Clear();
    return 0;
  }
  return r;
}

/* Raises NoDeviceError "<why>; devices(): [names]". */
static void no_device(ocl_state *st, PyObject *why) {
  PyObject *list = ocl_devices_list();
  PyObject *names = list != NULL ? PyList_New(0) : NULL;
  for (Py_ssize_t i = 0; names != NULL && i < PyList_Size(list); i++) {
    PyObject *d = PyList_GetItem(list, i);
    PyObject *s = PyUnicode_FromFormat(
        "%d: %S (%S, %S)", (int)i, PyDict_GetItemString(d, "name"),
        PyDict_GetItemString(d, "type"), PyDict_GetItemString(d, "platform"));
    if (s == NULL || PyList_Append(names, s) < 0) {
      Py_CLEAR(names);
    }
    Py_XDECREF(s);
  }
  if (names == NULL) {
    Py_XDECREF(list);
    return;
  }
  PyErr_Format(st->no_device_error, "%U; the devices are: %S", why, names);
  Py_DECREF(names);
  Py_DECREF(list);
}

int ocl_select_device(ocl_state *st, PyObject *sel, ocl_dev_ref *ref,
                      int *index) {
  const clx_api *cl = clx_get();
  if (cl == NULL) {
    PyErr_SetString(st->no_device_error, clx_load_error());
    return -1;
  }
  ocl_dev_ref refs[OCL_MAX_DEVICES];
  int n = list_devices(cl, refs, OCL_MAX_DEVICES);
  if (n == 0) {
    PyErr_Format(st->no_device_error,
                 "no OpenCL device: the OpenCL loader (%s) found no platform "
                 "or device; install a driver (Debian: apt-get install "
                 "pocl-opencl-icd for the CPU, or your GPU vendor's OpenCL "
                 "driver) and check that /etc/OpenCL/vendors lists it",
                 clx_library());
    return -1;
  }
  PyObject *owned = NULL;
  const char *source = "device";
  if (sel == NULL || sel == Py_None) {
    const char *env = getenv(OCL_DEVICE_ENV);
    if (env != NULL && env[0] != '\0') {
      owned = PyUnicode_FromString(env);
      if (owned == NULL) {
        return -1;
      }
      sel = owned;
      source = OCL_DEVICE_ENV;
    } else {
      sel = NULL;
    }
  }
  int found = -1;
  if (sel == NULL) {
    for (int i = 0; i < n && found < 0; i++) {
      cl_device_type type = 0;
      if (cl->clGetDeviceInfo(refs[i].device, CL_DEVICE_TYPE, sizeof(type),
                              &type, NULL) == CL_SUCCESS &&
          (type & CL_DEVICE_TYPE_GPU)) {
        found = i;
      }
    }
    if (found < 0) {
      found = 0;
    }
  } else if (PyLong_Check(sel) && !PyBool_Check(sel)) {
    long v = PyLong_AsLong(sel);
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      v = -1;
    }
    if (v >= 0 && v < n) {
      found = (int)v;
    }
  } else if (PyUnicode_Check(sel)) {
    PyObject *low = PyObject_CallMethod(sel, "lower", NULL);
    PyObject *stripped =
        low != NULL ? PyObject_CallMethod(low, "strip", NULL) : NULL;
    Py_XDECREF(low);
    if (stripped == NULL) {
      Py_XDECREF(owned);
      return -1;
    }
    Py_ssize_t slen = PyUnicode_GetLength(stripped);
    const char *utf8 = PyUnicode_AsUTF8AndSize(stripped, NULL);
    int digits = utf8 != NULL && slen > 0;
    for (const char *p = utf8; digits && p != NULL && *p; p++) {
      digits = isdigit((unsigned char)*p) != 0;
    }
    if (utf8 == NULL) {
      PyErr_Clear();
    } else if (digits) {
      long v = strtol(utf8, NULL, 10);
      if (v >= 0 && v < n) {
        found = (int)v;
      }
    } else if (slen > 0) {
      cl_device_type want = 0;
      if (strcmp(utf8, "gpu") == 0) {
        want = CL_DEVICE_TYPE_GPU;
      } else if (strcmp(utf8, "cpu") == 0) {
        want = CL_DEVICE_TYPE_CPU;
      } else if (strcmp(utf8, "accelerator") == 0) {
        want = CL_DEVICE_TYPE_ACCELERATOR;
      }
      for (int i = 0; i < n && found < 0; i++) {
        if (want != 0) {
          cl_device_type type = 0;
          if (cl->clGetDeviceInfo(refs[i].device, CL_DEVICE_TYPE,
                                  sizeof(type), &type, NULL) == CL_SUCCESS &&
              (type & want)) {
            found = i;
          }
          continue;
        }
        PyObject *d = ocl_device_info(cl, &refs[i], i);
        if (d == NULL) {
          Py_DECREF(stripped);
          Py_XDECREF(owned);
          return -1;
        }
        if (contains_ci(PyDict_GetItemString(d, "name"), stripped) ||
            contains_ci(PyDict_GetItemString(d, "vendor"), stripped) ||
            contains_ci(PyDict_GetItemString(d, "platform"), stripped)) {
          found = i;
        }
        Py_DECREF(d);
      }
    }
    Py_DECREF(stripped);
  } else {
    ocl_not_type(PyExc_TypeError, sel,
                 "device must be None, an index (int) or a str (a type such "
                 "as 'gpu', or part of the device's name)");
    Py_XDECREF(owned);
    return -1;
  }
  if (found < 0) {
    PyObject *why = PyUnicode_FromFormat(
        "no OpenCL device matches %s=%R (use an index from 0 to %d, 'gpu', "
        "'cpu', or part of a device's name)",
        source, sel, n - 1);
    if (why != NULL) {
      no_device(st, why);
      Py_DECREF(why);
    }
    Py_XDECREF(owned);
    return -1;
  }
  Py_XDECREF(owned);
  *ref = refs[found];
  *index = found;
  return 0;
}

