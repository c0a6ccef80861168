// A minimal HTTP/1.1 responder (epoll, one fixed 200 answer per request read): wrk's floor.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/epoll.h>
int main(int argc,char**argv){int port=atoi(argv[1]);int ls=socket(AF_INET,SOCK_STREAM,0);int one=1;setsockopt(ls,SOL_SOCKET,SO_REUSEADDR,&one,4);
 struct sockaddr_in a={0};a.sin_family=AF_INET;a.sin_addr.s_addr=htonl(INADDR_LOOPBACK);a.sin_port=htons(port);bind(ls,(void*)&a,sizeof a);listen(ls,128);
 int ep=epoll_create1(0);struct epoll_event e={.events=EPOLLIN,.data.fd=ls};epoll_ctl(ep,EPOLL_CTL_ADD,ls,&e);
 const char*resp="HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";char buf[65536];
 for(;;){struct epoll_event ev[64];int n=epoll_wait(ep,ev,64,-1);for(int i=0;i<n;i++){int fd=ev[i].data.fd;
  if(fd==ls){int c=accept(ls,0,0);struct epoll_event ce={.events=EPOLLIN,.data.fd=c};epoll_ctl(ep,EPOLL_CTL_ADD,c,&ce);continue;}
  int r=read(fd,buf,sizeof buf);if(r<=0){close(fd);continue;}write(fd,resp,strlen(resp));}}}
