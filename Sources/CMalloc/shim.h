#pragma once
// glibc's mallopt and its parameters (not in Swift's Glibc module)
#include <malloc.h>
