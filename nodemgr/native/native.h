/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The native protocol's requests (native.c): what the transport (conn.c) hands them. */

#include "manager.h"

/* Handles one frame of the connection. Returns < 0 when the connection must close (-EBADMSG: it
 * was refused and closes once that is sent). */
int native_dispatch(Conn *c, Frame *f);
/* Before a frame of a client with direct sockets: reads the records its actors' workers sent, since
 * the frame may name the results of those calls (the client saw their answers, which come after
 * the records). Not inside native_dispatch(): the frame being handled is the manager's one. */
void native_read_direct_records(Conn *c);
/* A client with direct sockets closes: its actors' workers' records no longer name it as holder. */
void native_forget_direct_caller(Conn *c);
/* Answers the connection's parked Gets, in order, while their replies fit. Returns how many. */
unsigned native_answer_parked(Conn *c);

/* Installs the transport on the manager (core/transport.h) and listens on its socket (raising the
 * soft fd limit and sizing the connection caps first). */
int native_setup(Manager *m);
