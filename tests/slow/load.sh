#!/bin/sh
# SPDX-License-Identifier: MIT
# Placeholder.
exit 77
