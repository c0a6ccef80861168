#define _GNU_SOURCE
// Appends of `size` bytes, each followed by fdatasync, as a WAL does under one client.
// Usage: sync DIR N SIZE PROCS [MODE]: PROCS processes at once, each on its own file in DIR,
// each pausing 300 us between syncs. Prints each process's p50/p90/p99 sync latency in
// microseconds. MODE: append (the file grows with every write, as Synod's segments do today),
// zeroed (written over a file filled with zeros first), fallocate (over space fallocate
// reserved, the size set), keepsize (fallocate with FALLOC_FL_KEEP_SIZE: the size still grows).
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <time.h>
#include <sys/wait.h>
#include <string.h>
static double now_us(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){const char*dir=argv[1];int n=atoi(argv[2]),size=atoi(argv[3]),procs=atoi(argv[4]);const char*mode=argc>5?argv[5]:"append";
 for(int p=0;p<procs;p++)if(fork()==0){char path[512];snprintf(path,sizeof path,"%s/sync-%d",dir,p);int fd=open(path,O_CREAT|O_TRUNC|O_WRONLY,0644);
  char*buf=calloc(1,size);
  if(strcmp(mode,"zeroed")==0){long total=(long)n*size+4096;char*z=calloc(1,1<<20);for(long w=0;w<total;w+=1<<20)write(fd,z,1<<20);fsync(fd);lseek(fd,0,SEEK_SET);free(z);}
  if(strcmp(mode,"keepsize")==0){fallocate(fd,FALLOC_FL_KEEP_SIZE,0,(long)n*size+4096);fsync(fd);}
  if(strcmp(mode,"fallocate")==0){posix_fallocate(fd,0,(long)n*size+4096);fsync(fd);}double*rt=malloc(n*sizeof(double));
  for(int i=0;i<n;i++){usleep(300);write(fd,buf,size);double t=now_us();fdatasync(fd);rt[i]=now_us()-t;}
  qsort(rt,n,sizeof(double),cmp);printf("%s: process %d of %d: fdatasync of %d-byte appends p50 %.0f us, p90 %.0f, p99 %.0f\n",mode,p+1,procs,size,rt[n/2],rt[n*9/10],rt[n*99/100]);unlink(path);exit(0);}
 while(wait(0)>0);}
