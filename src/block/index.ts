/**
 * The Linux 7.1 block layer's DMA side: a request's bvecs and gap bit (request.ts), the
 * blk_rq_dma_map_iter walk (blk-mq-dma.ts) and what the NVMe driver keeps per request (nvme-iod.ts).
 */
export * from './blk-mq-dma.ts';
export * from './nvme-iod.ts';
export * from './request.ts';
