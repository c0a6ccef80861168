// Loopback TCP ping-pong between two processes, each blocking in epoll_wait between messages
// (as an idle node's event loop does). Prints p50/p90/p99 round-trip in microseconds.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/wait.h>
static double now_us(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static void waitread(int ep,int fd,char*buf,int n){struct epoll_event e;int got=0;while(got<n){epoll_wait(ep,&e,1,-1);int r=read(fd,buf+got,n-got);if(r<=0)exit(1);got+=r;}}
int main(int argc,char**argv){int n=argc>1?atoi(argv[1]):5000;int size=argc>2?atoi(argv[2]):300;
 int ls=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={0};a.sin_family=AF_INET;a.sin_addr.s_addr=htonl(INADDR_LOOPBACK);
 bind(ls,(void*)&a,sizeof a);listen(ls,1);socklen_t l=sizeof a;getsockname(ls,(void*)&a,&l);
 char*buf=calloc(1,size);
 if(fork()==0){int c=socket(AF_INET,SOCK_STREAM,0);connect(c,(void*)&a,sizeof a);int one=1;setsockopt(c,IPPROTO_TCP,TCP_NODELAY,&one,4);
  int ep=epoll_create1(0);struct epoll_event e={.events=EPOLLIN,.data.fd=c};epoll_ctl(ep,EPOLL_CTL_ADD,c,&e);
  for(int i=0;i<n;i++){waitread(ep,c,buf,size);write(c,buf,size);}exit(0);}
 int s=accept(ls,0,0);int one=1;setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,4);
 int ep=epoll_create1(0);struct epoll_event e={.events=EPOLLIN,.data.fd=s};epoll_ctl(ep,EPOLL_CTL_ADD,s,&e);
 double*rt=malloc(n*sizeof(double));
 for(int i=0;i<n;i++){usleep(200);double t=now_us();write(s,buf,size);waitread(ep,s,buf,size);rt[i]=now_us()-t;}
 wait(0);qsort(rt,n,sizeof(double),cmp);
 printf("loopback TCP round trip, %d bytes, idle between: p50 %.1f us, p90 %.1f, p99 %.1f\n",size,rt[n/2],rt[n*9/10],rt[n*99/100]);}
