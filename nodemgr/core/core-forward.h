/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The core's types, declared so that a header can name them without including the one that
 * defines them (most are defined in manager.h; Call in callqueue.h, Object in objstore.h, ReqError
 * in req-error.h: C11 allows a typedef to be repeated). */

typedef struct Manager Manager;
typedef struct Actor Actor;
typedef struct Worker Worker;
typedef struct Conn Conn;
typedef struct Call Call;
typedef struct GetRequest GetRequest;
typedef struct Object Object;
typedef struct DirectResult DirectResult;
typedef struct DirectResults DirectResults;
typedef struct ReqError ReqError;
