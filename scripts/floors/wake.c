// Thread hand-off and back (as the event loop to the storage thread and back): a condition
// variable wakes a thread, which answers through an eventfd the first thread waits on in epoll.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
static int to_worker, to_loop; static pthread_mutex_t m=PTHREAD_MUTEX_INITIALIZER; static pthread_cond_t cv=PTHREAD_COND_INITIALIZER; static int pending=0;
static double now_us(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static void*worker(void*_){for(;;){pthread_mutex_lock(&m);while(!pending)pthread_cond_wait(&cv,&m);pending=0;pthread_mutex_unlock(&m);uint64_t one=1;write(to_loop,&one,8);}return 0;}
int main(int argc,char**argv){int n=argc>1?atoi(argv[1]):5000;to_loop=eventfd(0,0);pthread_t t;pthread_create(&t,0,worker,0);
 int ep=epoll_create1(0);struct epoll_event e={.events=EPOLLIN,.data.fd=to_loop};epoll_ctl(ep,EPOLL_CTL_ADD,to_loop,&e);
 double*rt=malloc(n*sizeof(double));
 for(int i=0;i<n;i++){usleep(200);double s=now_us();pthread_mutex_lock(&m);pending=1;pthread_cond_signal(&cv);pthread_mutex_unlock(&m);
  epoll_wait(ep,&e,1,-1);uint64_t v;read(to_loop,&v,8);rt[i]=now_us()-s;}
 qsort(rt,n,sizeof(double),cmp);printf("thread hand-off and back (condvar, then eventfd), idle between: p50 %.1f us, p90 %.1f, p99 %.1f\n",rt[n/2],rt[n*9/10],rt[n*99/100]);}
